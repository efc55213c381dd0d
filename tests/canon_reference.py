"""Plain-PyTorch definitions of the CNN canon in nets/, independent of netdsl's code.

Each class is written from its source's architecture (layer widths, kernels, strides, pads,
groups, where the pools, norms and dropouts sit, the initial weights), not from netdsl's files:
tests/test_canon.py copies a compiled .net file's weights into one and requires the same logits
and gradients.

- `AlexNet`, `VGG16`, `resnet18()`, `resnet50()`: torchvision's models (pytorch/vision,
  torchvision/models/alexnet.py, vgg.py, resnet.py). Their state-dict keys are torchvision's
  (`features.0.weight`, `layer1.0.conv1.weight`, ...), so torchvision's own weights load into them.
- `CaffeAlexNet`: BVLC/caffe models/bvlc_alexnet (deploy.prototxt; fillers from train_val.prototxt).
- `CaffeGoogLeNet`: BVLC/caffe models/bvlc_googlenet/train_val.prototxt, the two auxiliary
  classifiers included. Caffe's layer names with `/` written `_` (`inception_3a/1x1` is the
  module `inception_3a_1x1`).

Two Caffe facts the Caffe classes rely on: Caffe's LRN divides alpha by local_size, as PyTorch's
`F.local_response_norm` does (so that function is used with Caffe's own numbers), and Caffe's
pooling rounds the output size up (`ceil_mode=True`).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# torchvision


class AlexNet(nn.Module):
    """torchvision's alexnet: the single-GPU network of Krizhevsky's "One weird trick" (64, 192,
    384, 256, 256 filters), no LRN, dropout in front of fc6 and fc7; 61,100,840 parameters.
    PyTorch's default init throughout (torchvision sets none)."""

    # (in, out, kernel, stride, pad, max-pool 3/2 after it)
    CONVS = ((3, 64, 11, 4, 2, True), (64, 192, 5, 1, 2, True), (192, 384, 3, 1, 1, False),
             (384, 256, 3, 1, 1, False), (256, 256, 3, 1, 1, True))

    def __init__(self, classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        layers = []
        for c_in, c_out, k, s, p, pooled in self.CONVS:
            layers += [nn.Conv2d(c_in, c_out, k, stride=s, padding=p), nn.ReLU()]
            if pooled:
                layers.append(nn.MaxPool2d(3, 2))
        self.features = nn.Sequential(*layers)          # indices 0, 3, 6, 8, 10 are the convs
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))      # the identity on 224x224 inputs
        self.classifier = nn.Sequential(                 # 1, 4, 6 are the linear layers
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, classes))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


class VGG16(nn.Module):
    """torchvision's vgg16 (configuration D of Simonyan and Zisserman): thirteen 3x3 convs padded
    by 1 in five stages, each closed by a 2x2 max-pool, then fc 4096, 4096, 1000 with dropout
    after the two hidden ones; 138,357,544 parameters. Convs kaiming_normal(fan_out, relu),
    linear layers N(0, 0.01), every bias 0."""

    STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))

    def __init__(self, classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        layers, c_in = [], 3
        for stage in self.STAGES:
            for c_out in stage:
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
                c_in = c_out
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))      # the identity on 224x224 inputs
        self.classifier = nn.Sequential(                 # 0, 3, 6 are the linear layers
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))

    @classmethod
    def conv_indices(cls):
        """The positions in `features` of the thirteen convs, in order (each conv is followed by
        its ReLU, each stage by its pool)."""
        indices, at = [], 0
        for stage in cls.STAGES:
            for _ in stage:
                indices.append(at)
                at += 2
            at += 1
        return indices


def _conv(c_in, c_out, k, stride=1):
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs, each with batch norm; the first may stride; identity or 1x1 projection."""
    expansion = 1

    def __init__(self, c_in, width, stride=1, stride_in_3x3=True):
        super().__init__()
        self.conv1, self.bn1 = _conv(c_in, width, 3, stride), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3), nn.BatchNorm2d(width)
        self.downsample = None
        if stride != 1 or c_in != width:
            self.downsample = nn.Sequential(_conv(c_in, width, 1, stride), nn.BatchNorm2d(width))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), each with batch norm. torchvision ("ResNet v1.5") strides
    in the 3x3 conv; the paper (He et al. 2015, and its Caffe models) in the first 1x1:
    `stride_in_3x3=False` builds that one (same parameters, different function)."""
    expansion = 4

    def __init__(self, c_in, width, stride=1, stride_in_3x3=True):
        super().__init__()
        out = width * self.expansion
        s1, s3 = (1, stride) if stride_in_3x3 else (stride, 1)
        self.conv1, self.bn1 = _conv(c_in, width, 1, s1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3, s3), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = _conv(width, out, 1), nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or c_in != out:
            self.downsample = nn.Sequential(_conv(c_in, out, 1, stride), nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision's ResNet: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool padded by 1, four stages of
    blocks (widths 64, 128, 256, 512; the first block of stages 2-4 strides by 2), global average
    pool, fc. Convs kaiming_normal(fan_out, relu), no conv biases; BN weight 1, bias 0; the fc
    PyTorch's default init."""

    def __init__(self, block, depths, classes: int = 1000, stride_in_3x3=True):
        super().__init__()
        self.conv1, self.bn1 = _conv(3, 64, 7, 2), nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        c_in = 64
        for stage, (width, depth) in enumerate(zip((64, 128, 256, 512), depths), start=1):
            blocks = []
            for i in range(depth):
                stride = 2 if stage > 1 and i == 0 else 1
                blocks.append(block(c_in, width, stride, stride_in_3x3))
                c_in = width * block.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c_in, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(classes: int = 1000) -> ResNet:
    """11,689,512 parameters."""
    return ResNet(BasicBlock, (2, 2, 2, 2), classes)


def resnet50(classes: int = 1000, stride_in_3x3: bool = True) -> ResNet:
    """25,557,032 parameters (either stride placement)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), classes, stride_in_3x3)


# --------------------------------------------------------------------------------------------
# Caffe


def caffe_lrn(x):
    """Caffe's LRN ACROSS_CHANNELS with bvlc's numbers: x / (1 + 1e-4 / 5 * sum of 5 squares)^0.75."""
    return F.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=1.0)


def caffe_max_pool(x, size, stride, pad=0):
    return F.max_pool2d(x, size, stride, pad, ceil_mode=True)


def xavier_(weight):
    """Caffe's xavier filler (variance_norm FAN_IN): U(-sqrt(3 / fan_in), sqrt(3 / fan_in))."""
    fan_in = weight[0].numel()
    bound = math.sqrt(3.0 / fan_in)
    nn.init.uniform_(weight, -bound, bound)


class CaffeAlexNet(nn.Module):
    """BVLC's reference AlexNet: 227x227 input, conv1 unpadded, conv2/4/5 in two groups (Caffe's
    `group: 2`), LRN over all the channels after conv1 and conv2 (before their pools), fc6 and fc7
    with inverted dropout 0.5; 60,965,224 parameters. Init from train_val.prototxt."""

    # name: (in, out, kernel, stride, pad, group, weight std, bias)
    CONVS = {"conv1": (3, 96, 11, 4, 0, 1, 0.01, 0.0), "conv2": (96, 256, 5, 1, 2, 2, 0.01, 0.1),
             "conv3": (256, 384, 3, 1, 1, 1, 0.01, 0.0), "conv4": (384, 384, 3, 1, 1, 2, 0.01, 0.1),
             "conv5": (384, 256, 3, 1, 1, 2, 0.01, 0.1)}
    # name: (in, out, weight std, bias)
    FCS = {"fc6": (9216, 4096, 0.005, 0.1), "fc7": (4096, 4096, 0.005, 0.1),
           "fc8": (4096, 1000, 0.01, 0.0)}

    def __init__(self):
        super().__init__()
        for name, (c_in, c_out, k, s, p, g, std, bias) in self.CONVS.items():
            conv = nn.Conv2d(c_in, c_out, k, stride=s, padding=p, groups=g)
            nn.init.normal_(conv.weight, 0.0, std)
            nn.init.constant_(conv.bias, bias)
            self.add_module(name, conv)
        for name, (n_in, n_out, std, bias) in self.FCS.items():
            fc = nn.Linear(n_in, n_out)
            nn.init.normal_(fc.weight, 0.0, std)
            nn.init.constant_(fc.bias, bias)
            self.add_module(name, fc)

    def forward(self, x):
        x = caffe_max_pool(caffe_lrn(F.relu(self.conv1(x))), 3, 2)
        x = caffe_max_pool(caffe_lrn(F.relu(self.conv2(x))), 3, 2)
        x = F.relu(self.conv5(F.relu(self.conv4(F.relu(self.conv3(x))))))
        x = caffe_max_pool(x, 3, 2).flatten(1)
        x = F.dropout(F.relu(self.fc6(x)), 0.5, self.training)
        x = F.dropout(F.relu(self.fc7(x)), 0.5, self.training)
        return self.fc8(x)


class CaffeGoogLeNet(nn.Module):
    """BVLC's GoogLeNet (train_val.prototxt): nine inception modules, LRN after pool1 and conv2,
    two auxiliary classifiers (after 4a and 4d: 5x5/3 average pool, 1x1 conv 128, fc 1024,
    dropout 0.7, fc 1000; each loss weighted 0.3), a 7x7 average pool, dropout 0.4 and the fc
    classifier. Every weight Caffe's xavier, biases 0.2 except the three classifiers' (0).
    13,378,280 parameters, 6,998,552 without the auxiliary heads.

    forward returns the main logits in eval mode, (main, aux1, aux2) in training mode.
    """

    # name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
    INCEPTIONS = {
        "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
        "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
        "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
        "4e": (256, 160, 320, 32, 128, 128),
        "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
    }
    AUX = {"loss1": "4a", "loss2": "4d"}   # each auxiliary head and the module it reads

    def __init__(self, classes: int = 1000):
        super().__init__()
        self._conv("conv1_7x7_s2", 3, 64, 7, stride=2)
        self._conv("conv2_3x3_reduce", 64, 64, 1)
        self._conv("conv2_3x3", 64, 192, 3)
        c_in = 192
        for name, (n1, r3, n3, r5, n5, proj) in self.INCEPTIONS.items():
            p = f"inception_{name}_"
            self._conv(p + "1x1", c_in, n1, 1)
            self._conv(p + "3x3_reduce", c_in, r3, 1)
            self._conv(p + "3x3", r3, n3, 3)
            self._conv(p + "5x5_reduce", c_in, r5, 1)
            self._conv(p + "5x5", r5, n5, 5)
            self._conv(p + "pool_proj", c_in, proj, 1)
            c_in = n1 + n3 + n5 + proj
            for head, after in self.AUX.items():
                if after == name:
                    self._conv(f"{head}_conv", c_in, 128, 1)
                    self._fc(f"{head}_fc", 128 * 4 * 4, 1024, 0.2)
                    self._fc(f"{head}_classifier", 1024, classes, 0.0)
        self._fc("loss3_classifier", c_in, classes, 0.0)

    def _conv(self, name, c_in, c_out, k, stride=1):
        conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2)
        xavier_(conv.weight)
        nn.init.constant_(conv.bias, 0.2)
        self.add_module(name, conv)

    def _fc(self, name, n_in, n_out, bias):
        fc = nn.Linear(n_in, n_out)
        xavier_(fc.weight)
        nn.init.constant_(fc.bias, bias)
        self.add_module(name, fc)

    def _inception(self, name, x):
        def conv(suffix, t):
            return F.relu(getattr(self, f"inception_{name}_{suffix}")(t))
        branches = (conv("1x1", x),
                    conv("3x3", conv("3x3_reduce", x)),
                    conv("5x5", conv("5x5_reduce", x)),
                    conv("pool_proj", caffe_max_pool(x, 3, 1, 1)))
        return torch.cat(branches, 1)

    def _aux(self, head, x):
        x = F.avg_pool2d(x, 5, 3, ceil_mode=True)
        x = F.relu(getattr(self, f"{head}_conv")(x)).flatten(1)
        x = F.dropout(F.relu(getattr(self, f"{head}_fc")(x)), 0.7, self.training)
        return getattr(self, f"{head}_classifier")(x)

    def forward(self, x):
        x = caffe_lrn(caffe_max_pool(F.relu(self.conv1_7x7_s2(x)), 3, 2))
        x = F.relu(self.conv2_3x3(F.relu(self.conv2_3x3_reduce(x))))
        x = caffe_max_pool(caffe_lrn(x), 3, 2)
        kept = {}
        for name in self.INCEPTIONS:
            if name in ("4a", "5a"):
                x = caffe_max_pool(x, 3, 2)       # pool3/3x3_s2, pool4/3x3_s2
            x = kept[name] = self._inception(name, x)
        x = F.avg_pool2d(x, 7, 1, ceil_mode=True).flatten(1)
        x = self.loss3_classifier(F.dropout(x, 0.4, self.training))
        if not self.training:
            return x
        # The heads after the main path, as netdsl's generated forward runs them, so that a
        # seeded run draws the same dropout masks in both (the order changes nothing else).
        return (x, *(self._aux(head, kept[after]) for head, after in self.AUX.items()))

    def main_params(self) -> int:
        """The parameters without the auxiliary heads."""
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith(tuple(self.AUX)))
