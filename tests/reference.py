"""Plain-PyTorch references written from the papers' formulas, independent of netdsl's code."""
import torch
import torch.nn.functional as F
from torch import nn


def lrn_formula(a: torch.Tensor, n: int, k: float, alpha: float, beta: float) -> torch.Tensor:
    """AlexNet section 3.3, channel by channel: b_i = a_i / (k + alpha * sum_j a_j^2)^beta."""
    channels = a.shape[1]
    out = []
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        out.append(a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(1)) ** beta)
    return torch.stack(out, 1)


def lrn_per_group(a, groups, n=5, k=2.0, alpha=1e-4, beta=0.75):
    """The LRN of each GPU on its own half of the maps: the window never crosses groups."""
    return torch.cat([lrn_formula(part, n, k, alpha, beta) for part in a.chunk(groups, 1)], 1)


class PaperAlexNet(nn.Module):
    """AlexNet as section 3.5 and Figure 2 describe it, two GPU groups as grouped convolutions."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4, padding=2)     # 48 kernels on each GPU
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)    # 5x5x48: own GPU only
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)             # 3x3x256: both GPUs
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)   # 3x3x192
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)   # 3x3x192
        self.fc6 = nn.Linear(256 * 6 * 6, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, 1000)

    def forward(self, x):
        x = F.max_pool2d(lrn_per_group(F.relu(self.conv1(x)), 2), 3, 2)
        x = F.max_pool2d(lrn_per_group(F.relu(self.conv2(x)), 2), 3, 2)
        x = F.relu(self.conv5(F.relu(self.conv4(F.relu(self.conv3(x))))))
        x = torch.flatten(F.max_pool2d(x, 3, 2), 1)
        x = paper_dropout(F.relu(self.fc6(x)), self.training)
        x = paper_dropout(F.relu(self.fc7(x)), self.training)
        return self.fc8(x)


def paper_dropout(x, training: bool, p: float = 0.5):
    """Section 4.2: each output zeroed with probability p in training; "at test time, we use all
    the neurons but multiply their outputs by 0.5"."""
    if training:
        return x * (torch.rand_like(x) >= p)
    return x * (1 - p)


def si_formula(x, conv, scales, neuron=F.relu):
    """The SI layer as docs/language.md writes it: resize, conv, resize back, max over scales."""
    bl = dict(mode="bilinear", align_corners=False)
    size = conv(x).shape[-2:]
    z = [F.interpolate(conv(F.interpolate(x, scale_factor=s, **bl)), size=size, **bl) for s in scales]
    return neuron(torch.stack(z).max(0).values)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest absolute difference relative to the largest reference value; NaN if `actual` has one,
    0 where both are all zero (as a gradient can be), huge where only `expected` is."""
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


def images(n, c, h, w, dtype=torch.float32):
    """Fresh random 'raw pixels minus the mean': values in about -128..128."""
    return torch.rand(n, c, h, w, dtype=dtype) * 255 - 128
