"""The CNN canon in nets/: each file has its source's parameter count, starts from its source's
initial weights (where the language can say them), and computes what an independent
plain-PyTorch definition of the source computes (tests/canon_reference.py): the same logits in
eval and in training mode (dropout drawn from the same seed, batch norm on the batch's
statistics) and the same gradients with respect to the input and every weight.

Batch 2 at each file's own input size. The two sides run the same PyTorch operations but for
the LRN (netdsl's own; the reference's F.local_response_norm) and the global average pool, so
they agree to a few ulps. The networks with LRN run in float64: in float32 those few ulps before
a max-pool turn a near-tie now and then (some inputs, not others), and the gradient then flows
through the other, equally valid, maximum. About 25 s on 2 cores.
"""
import pytest
import torch

import canon_reference as ref
import netdsl


def dotted(prefix: str) -> str:
    """torchvision's ResNet names: layer1_0_downsample_0 is layer1.0.downsample.0."""
    return prefix.replace("_", ".")


def alexnet_names() -> dict[str, str]:
    convs = ["features.0", "features.3", "features.6", "features.8", "features.10"]
    names = {f"conv{i}": where for i, where in enumerate(convs, start=1)}
    return {**names, "fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"}


def vgg16_names() -> dict[str, str]:
    convs = [f"conv{stage}_{i}" for stage, n in enumerate((2, 2, 3, 3, 3), start=1) for i in range(1, n + 1)]
    names = {name: f"features.{index}" for name, index in zip(convs, ref.VGG16.conv_indices(), strict=True)}
    return {**names, "fc6": "classifier.0", "fc7": "classifier.3", "fc8": "classifier.6"}


# file: (reference, input side, parameters, netdsl layer name -> reference module name,
#        reference tensors whose initial values the language cannot write (bias constants
#        where PyTorch draws the bias from its default uniform range), the dtype compared in,
#        the input's spread: torchvision's inputs are normalized, Caffe's raw pixels minus the
#        mean (which is what makes their LRN act))
F32, F64 = torch.float32, torch.float64
CANON = {
    "nets/alexnet_1gpu.net": (ref.AlexNet, 224, 61_100_840, alexnet_names(),
                              {f"{m}.bias" for m in alexnet_names().values()}, F32, 1),
    "nets/vgg16.net": (ref.VGG16, 224, 138_357_544, vgg16_names(), set(), F32, 1),
    "nets/resnet18.net": (ref.resnet18, 224, 11_689_512, dotted, {"fc.bias"}, F32, 1),
    "nets/resnet50.net": (ref.resnet50, 224, 25_557_032, dotted, {"fc.bias"}, F32, 1),
    "nets/caffe_alexnet.net": (ref.CaffeAlexNet, 227, 60_965_224, None, set(), F64, 60),
    "nets/googlenet.net": (ref.CaffeGoogLeNet, 224, 13_378_280, None, set(), F64, 60),
}


def state_dict_key(names):
    """netdsl's state-dict key (`layer1_0_conv1.weight`) to the reference's."""
    def key(name: str) -> str:
        prefix, leaf = name.rsplit(".", 1)
        if callable(names):
            return f"{names(prefix)}.{leaf}"
        return f"{(names or {}).get(prefix, prefix)}.{leaf}"
    return key


def assert_close(got, want, what):
    """Equal to rounding: every difference within 1e-5 (float32) or 1e-10 (float64) of the
    largest value."""
    got, want = got.detach(), want.detach()
    assert got.shape == want.shape and got.dtype == want.dtype, what
    tol = 1e-10 if want.dtype == torch.float64 else 1e-5
    error, scale = float((got - want).abs().max()), float(want.abs().max())
    assert error <= tol * scale, f"{what}: differs by up to {error:.3g} where the largest value is {scale:.3g}"


def assert_same_start(got, want, what):
    """The same initial distribution: constants equal; random tensors of similar spread within the
    same range (a uniform's bound, a normal's std)."""
    if want.numel() < 2 or float(want.std()) == 0:
        torch.testing.assert_close(got, want, rtol=0, atol=1e-7, msg=lambda m: f"{what}: {m}")
        return
    assert float(got.std()) == pytest.approx(float(want.std()), rel=0.1), what
    assert abs(float(got.mean())) < 0.2 * float(want.std()) + abs(float(want.mean())), what
    assert float(got.abs().max()) <= 1.05 * float(want.abs().max()) + 6 * float(want.std()), what


def outputs(model, x, seed):
    """The logits (googlenet in training: main, aux1, aux2) of a forward seeded for dropout."""
    torch.manual_seed(seed)
    y = model(x)
    return y if isinstance(y, tuple) else (y,)


def loss_of(ys):
    """A loss with a fixed random weight on every logit, so every gradient is exercised."""
    g = torch.Generator().manual_seed(11)
    return sum((y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum() for y in ys)


@pytest.mark.slow
@pytest.mark.parametrize("path", list(CANON))
def test_canon_parameter_counts(path):
    build, _, params, *_ = CANON[path]
    assert netdsl.parse_file(path).params == params
    with torch.device("meta"):                                # shapes only: no weights drawn
        assert ref.count_params(build()) == params


@pytest.mark.slow
def test_googlenet_without_its_auxiliary_heads():
    net = netdsl.parse_file("nets/googlenet.net")
    heads = [layer for layer in net.layers if layer.name.startswith(("loss1_", "loss2_"))]
    assert sum(layer.params for layer in net.layers) - sum(layer.params for layer in heads) == 6_998_552
    assert [layer.options["loss_weight"] for layer in heads if layer.type == "softmax"] == [0.3, 0.3]
    with torch.device("meta"):
        assert ref.CaffeGoogLeNet().main_params() == 6_998_552


@pytest.mark.slow
@pytest.mark.parametrize("path", list(CANON))
def test_canon_net_computes_its_source(path):
    build, side, _, names, inexpressible, dtype, spread = CANON[path]
    model = netdsl.compile_net(path, backend="torch")
    reference = build()
    key = state_dict_key(names)

    # The initial weights: the source's own (the reference's), but for the named exceptions.
    theirs = reference.state_dict()
    for name, tensor in model.state_dict().items():
        if key(name) in inexpressible:
            assert torch.all(tensor == 0), name       # netdsl's constant bias, 0
        else:
            assert_same_start(tensor.float(), theirs[key(name)].float(), name)

    # The same weights on both sides; strict, so every tensor has its counterpart.
    reference.load_state_dict({key(name): tensor for name, tensor in model.state_dict().items()}, strict=True)
    model, reference = model.to(dtype), reference.to(dtype)

    torch.manual_seed(0)
    x = spread * torch.randn(2, 3, side, side, dtype=dtype)
    with torch.no_grad():
        model.eval()
        reference.eval()
        for got, want in zip(outputs(model, x, 1), outputs(reference, x, 1), strict=True):
            assert_close(got, want, "eval logits")

    model.train()
    reference.train()
    x_model, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    ys_model, ys_ref = outputs(model, x_model, 2), outputs(reference, x_ref, 2)
    assert len(ys_model) == len(ys_ref) == (3 if "googlenet" in path else 1)
    for i, (got, want) in enumerate(zip(ys_model, ys_ref, strict=True)):
        assert_close(got, want, f"training logits, output {i}")
    loss_of(ys_model).backward()
    loss_of(ys_ref).backward()
    assert_close(x_model.grad, x_ref.grad, "d loss / d input")
    theirs = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        assert_close(p.grad, theirs[key(name)].grad, f"d loss / d {name}")
    buffers = dict(reference.named_buffers())                 # batch norm's running statistics
    for name, b in model.named_buffers():
        assert_close(b, buffers[key(name)], name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet_1gpu", "caffe_alexnet", "vgg16", "resnet18", "resnet50", "googlenet"])
def test_each_canon_network_exports_to_onnx_and_draws(name):
    """onnxruntime's logits equal the module's in eval mode within 1e-4 of the largest (the heads left
    out of the graph), and the drawing has a box for every layer."""
    import onnxruntime

    from netdsl.codegen.drawing import layout
    from netdsl.codegen.onnx_export import to_onnx

    net = netdsl.parse_file(f"nets/{name}.net")
    model = netdsl.compile_net(net, backend="torch").eval()
    session = onnxruntime.InferenceSession(to_onnx(net, model.state_dict()).SerializeToString())
    x = torch.randn(1, *net.input_shape, generator=torch.Generator().manual_seed(3)) * 50
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {net.data.name: x.numpy()})[0]
    assert abs(got - expected).max() <= 1e-4 * abs(expected).max()
    assert {box.layer for box in layout(net).boxes} == {layer.name for layer in net.layers}
