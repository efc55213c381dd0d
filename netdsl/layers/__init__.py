"""The layer types, one module each, its template beside it (<type>.py.j2: init, forward, weights).

    base.py        LayerType: what every type answers (shapes, inputs, code, ONNX, groups, drawing)
    registry.py    REGISTRY: every type by name, each module here imported once
    neuron.py      the neurons every weighted layer takes, and the `neuron` layer
    weights.py     what the weighted layers share: their keys, init and bias
    data.py        the input
    conv.py        convolution (channel groups, cuda-convnet's rounding, no bias)
    siconv.py      the SI paper's scale-invariant convolution
    local.py       cuda-convnet's locally-connected layer
    fc.py          fully connected
    lrn.py         response normalization, across channels or within each map
    pool.py        maxpool and avgpool
    batchnorm.py   batch normalization
    eltwise.py     sum and max of several inputs
    dropout.py     dropout, the paper's or inverted
    output.py      softmax and sigmoid: the output, and auxiliary heads
"""
