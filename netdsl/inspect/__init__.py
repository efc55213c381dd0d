"""What a trained network has learnt, read from a checkpoint: the AlexNet paper's Figures 3 and 4.
It builds on the runner (its data pipeline and netdsl/runner/activations.py) and knows no experiment.

    filters.py     a conv layer's kernels as an image grid, one block a group (Figure 3)
    features.py    any layer's activations for every image of a split, to a memory-mapped .npy
    neighbours.py  the training images nearest to test images by those activations (Figure 4)
"""
