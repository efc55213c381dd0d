"""The language: a `.net` file's text to the checked network, the IR the rest of netdsl reads.

    parse.py     text to sections, with positions (the grammar is netdsl.lark, beside it)
    values.py    the values a key takes: numbers, names, lists, shapes, calls, checked
    ir.py        the immutable IR: Net, Layer, Shape, TrainConfig
    check.py     sections to the IR, every shape inferred, every fault pointed at
    netdiff.py   what differs between two networks, and between their recipes
    report.py    the compile report: the per-layer table, or the same as plain data
"""
