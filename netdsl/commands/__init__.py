"""`netdsl` commands, one module each, as netdsl/cli.py lists them: add_arguments(parser)
defines the flags and run(args) does the work.

    data.py        prepare image folders; write MNIST-scale and Fashion-MNIST (datasets/)
    plot.py        a run's loss and error curves to a PNG
    export.py      a network and a checkpoint as ONNX (codegen/onnx_export.py)

Imports nothing itself, so cli.py can list the commands without loading them.
"""
