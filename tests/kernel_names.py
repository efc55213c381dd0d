"""The Triton kernels a network's generated triton module launches, named as the templates name them."""
from netdsl.ir import Net
from netdsl.layers import REGISTRY


def expected_kernels(net: Net) -> set[str]:
    """A forward and a backward kernel per layer whose type has kernel templates: lrn_rnorm1_forward_kernel, ..."""
    return {f"{template}_{layer.name}_{step}_kernel" for layer in net.layers
            for template in REGISTRY[layer.type].kernels for step in ("forward", "backward")}
