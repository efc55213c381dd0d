# Python 2.7 (cuda-convnet's own language), with numpy: run cuda-convnet's (or cuda-convnet2's)
# own layer.py on a layer file and print, as JSON, what its parsers make of every layer: its
# outputs (values per image), its image side, and the sizes of its weight and bias matrices.
#
#     python2 docs/import/cuda_convnet_own.py SOURCE_DIR LAYERS.cfg PARAMS.cfg C H W CLASSES
#
# SOURCE_DIR holds the version's layer.py (and the modules it imports: options.py, ordereddict.py,
# or python_util/). check_originals.py --python2 runs it beside its own reimplementation of the
# same rules; the model object below stands in for the data provider and the command line.
import json
import os
import sys


class _Op(object):
    def get_value(self, name):
        return {"conserve_mem": 0, "gpu": [0, 1, 2, 3]}[name]


class _Provider(object):
    def __init__(self, dims, classes):
        self.dims = dims
        self.classes = classes

    def get_data_dims(self, idx=0):
        return self.dims if idx == 0 else 1

    def get_num_classes(self):
        return self.classes


class _Model(object):
    def __init__(self, dims, classes):
        self.op = _Op()
        self.train_data_provider = _Provider(dims, classes)


def main():
    source, layers_cfg, params_cfg = sys.argv[1:4]
    c, h, w, classes = [int(x) for x in sys.argv[4:8]]
    sys.path.insert(0, source)
    real_stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")      # the parsers print a line a layer
    import layer as cc
    parsed = cc.LayerParser.parse_layers(layers_cfg, params_cfg, _Model(c * h * w, classes))
    sys.stdout = real_stdout
    items = parsed.items() if isinstance(parsed, dict) else [(l["name"], l) for l in parsed]
    out = []
    for name, dic in items:
        weights = sum(int(m.size) for m in dic.get("weights", []))
        biases = int(dic["biases"].size) if "biases" in dic else 0
        side = dic.get("modulesX", dic.get("outputsX", dic.get("imgSize", 0)))
        if isinstance(side, list):
            side = side[0]
        out.append({"name": name, "type": dic["type"], "outputs": int(dic.get("outputs", 0)),
                    "side": int(side or 0), "params": weights + biases})
    print(json.dumps(out))


main()
