"""Code generation: the checked network to Python source, to a module, or to ONNX.

    render.py       the IR to source through the Jinja2 templates of codegen_templates/
    load.py         the source to an imported module (written to a content-addressed cache first)
    onnx_export.py  the network and its weights as an ONNX graph, one converter a layer type
    resources.py    where the grammar and the templates are found, in a checkout or a wheel
"""
