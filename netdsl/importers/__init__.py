"""Networks brought in from other systems as `.net` text: the same network, or a refusal.

    prototxt.py      protobuf's text format (Caffe's .prototxt) read with prototxt.lark, the grammar beside it
    netwriter.py     the .net text an importer writes, checked by netdsl; Refusal, Origin, Names
    caffe.py         Caffe nets (V1 and V2 syntax) and solvers -> .net (`netdsl import caffe`)
    cuda_convnet.py  cuda-convnet's and cuda-convnet2's layer files -> .net (`netdsl import cuda-convnet`)

docs/import.md holds each public network imported beside its counts from the original's own rules.
"""
