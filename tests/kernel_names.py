"""The Triton kernels a network's generated triton module launches, named as the templates name them."""
from netdsl.language.ir import Net
from netdsl.layers.registry import REGISTRY


# Each template's kernels beyond its forward and backward: the within-map LRN's backward takes two passes
EXTRA_STEPS = {"lrn_within": ("terms",)}


def expected_kernels(net: Net) -> set[tuple[str, str]]:
    """(layer, kernel) for the forward and the backward kernels of each layer whose type has kernel templates:
    ("rnorm1", "lrn_forward_kernel"), ... The kernels are one per operation, shared by its layers."""
    return {(layer.name, f"{template}_{step}_kernel") for layer in net.layers
            for template in REGISTRY[layer.type].kernels_of(layer)
            for step in ("forward", "backward", *EXTRA_STEPS.get(template, ()))}
