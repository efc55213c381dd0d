"""Code generation: the checked network to Python source, to a module, to ONNX, or to a picture.

    render.py       the IR to source through the Jinja2 templates of codegen_templates/
    load.py         the source to an imported module (written to a content-addressed cache first)
    onnx_export.py  the network and its weights as an ONNX graph, one converter a layer type
    drawing.py      the network as a picture: boxes and arrows from the IR, then Graphviz DOT
    resources.py    where the grammar and the templates are found, in a checkout or a wheel
"""
