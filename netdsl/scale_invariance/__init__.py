"""The SI paper's experiment: how scale-invariant a trained network is (docs/scale-invariance.md).
Builds on the runner and the datasets; nothing outside netdsl/commands/ imports it.

    invariance.py   each layer's invariance score (the paper's Figure 5)
    scale_eval.py   test error with every image shown at one fixed scale
"""
