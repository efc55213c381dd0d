"""Datasets netdsl writes as image folders, or draws itself.

    idx.py            MNIST-format IDX files read and checked
    fashion_mnist.py  Fashion-MNIST as train/, val/ and test/ folders
    mnist_scale.py    MNIST-scale (Sohn and Lee 2012) from IDX files, and its centred rescaling
    synthetic.py      the built-in shapes dataset a first `netdsl train` uses
"""
