"""The `netdsl` commands, one module each, as netdsl/cli.py lists them: add_arguments(parser)
defines the flags and run(args) calls the wing that does the work.

    compile.py     check a network, print its table (language/report.py), -o writes its source
    diff.py        compare two networks (language/netdiff.py)
    train.py       train a network (runner/train.py)
    eval.py        top-1 and top-5 error of a checkpoint (runner/evaluate.py), or of an ensemble
                   of several (runner/ensemble.py); with --scales, error against scale
                   (scale_invariance/scale_eval.py)
    data.py        prepare image folders; write MNIST-scale and Fashion-MNIST (datasets/)
    plot.py        a run's loss and error curves to a PNG
    invariance.py  each layer's invariance score (scale_invariance/invariance.py)
    export.py      a network and a checkpoint as ONNX (codegen/onnx_export.py)
    draw.py        the network as a picture, groups side by side (codegen/drawing.py)
    time.py        a training step timed layer by layer (runner/timing.py)
    filters.py     a conv layer's kernels as an image grid (inspect/filters.py)
    features.py    a layer's activations over a split, to a .npy (inspect/features.py)
    neighbours.py  the nearest training images by a layer's activations (inspect/neighbours.py)
    import_net.py  a Caffe or cuda-convnet network as a .net file (importers/)
    runs.py        a table of run folders: recipe changes, errors, time, commit (runner/runs.py)

Imports nothing itself, so cli.py can list the commands without loading them.
"""
