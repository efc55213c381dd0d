"""Code generation: the checked network to Python source, to a module, to ONNX, or to a picture.

    render.py       the IR to source through the Jinja2 templates (each layer type's, and codegen_templates/)
    load.py         the source to an imported module (written to a content-addressed cache first)
    interpret.py    the generated forward run a layer at a time (placement, `netdsl time`, features)
    onnx_export.py  the network and its weights as an ONNX graph, each layer type adding its nodes
    drawing.py      the network as a picture: boxes and arrows from the IR, then Graphviz DOT
    resources.py    where the grammar and the templates are found, in a checkout or a wheel
"""
