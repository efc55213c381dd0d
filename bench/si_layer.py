"""SI layers forward+backward: netdsl's torch backend against the formula as docs/language.md writes it.

    python bench/si_layer.py                     # nets/mnist_scale_si.net's two SI layers, batch 128
    python bench/si_layer.py --repeats 15 --threads 1
    python bench/si_layer.py --profile           # and a torch.profiler table of each, per op
    python bench/si_layer.py nets/si_alexnet.net --batch 8 --no-step

For every siconv layer of the network, on random inputs of its input shape (in [0, 1), as images and
ReLU outputs are non-negative) and the conv build() gives it:
    formula   torch.stack([F.interpolate(conv(F.interpolate(x, scale_factor=s, **bl)), size=size, **bl)
              for s in scales]).max(dim=0).values, with bl bilinear, align_corners=False: the contract's
              formula as written, size being conv(x)'s (the generated code passes it), and what the
              torch backend generated before
    netdsl    the si_conv2d of the module the torch backend generates for the network
one forward+backward each, as training runs them: the input's gradient too unless the layer reads the
data layer, and the output's gradient in the output's own layout, as the ReLU after it hands it back.
First it checks that the two agree, and prints the largest differences: outputs in float32 within 1e-5
of the largest value; outputs and the gradients of input, weight and bias in float64, at batch 4, within
1e-10 (two maps a rounding apart may send the gradient either way; in float64 such near-ties do not
occur). Then it times them side by side in one process, alternating, after a warm-up, and reports the
median of the repeats for all the SI layers together, images/s and the ratio; and, unless --no-step, the
same for a whole training step of the network (forward, cross-entropy, backward, SGD step), the
generated module calling each si_conv2d in turn, from the same weights.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import netdsl


def formula_si_conv2d(x, conv, scales, size):
    """The SI layer as docs/language.md writes it."""
    bl = dict(mode="bilinear", align_corners=False)
    maps = [F.interpolate(conv(F.interpolate(x, scale_factor=s, **bl)), size=size, **bl) for s in scales]
    return torch.stack(maps).max(dim=0).values


def si_layers(net, model, batch, dtype=torch.float32):
    """(name, x, conv, scales, size, grad) for each SI layer: a random input and output gradient."""
    layers = []
    for layer in net.layers:
        if layer.type != "siconv":
            continue
        i, o = layer.in_shape, layer.out_shape
        x = torch.rand(batch, i.c, i.h, i.w, dtype=dtype)
        x.requires_grad_(net.layer(layer.inputs[0]).type != "data")  # training needs no gradient of the data
        conv = getattr(model, layer.name).to(dtype)
        grad = torch.randn(batch, o.c, o.h, o.w, dtype=dtype)
        layers.append((layer.name, x, conv, layer.options["scales"], (o.h, o.w), grad))
    return layers


def rel_err(actual, expected) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def check(net, module, si_conv2d, batch: int) -> None:
    """Both implementations agree: float32 outputs at the timing batch, float64 outputs and gradients."""
    for dtype, batch, tolerance in ((torch.float32, batch, 1e-5), (torch.float64, 4, 1e-10)):
        model = module.build()
        for name, x, conv, scales, size, grad in si_layers(net, model, batch, dtype):
            x.requires_grad_(dtype == torch.float64)
            theirs, ours = formula_si_conv2d(x, conv, scales, size), si_conv2d(x, conv, scales, size)
            errors = {"output": rel_err(ours, theirs)}
            if dtype == torch.float64:
                wrt = (x, conv.weight, conv.bias)
                for what, a, b in zip(("input", "weight", "bias"), torch.autograd.grad(ours, wrt, grad),
                                      torch.autograd.grad(theirs, wrt, grad)):
                    errors[f"{what} gradient"] = rel_err(a, b)
            print(f"  {name} {str(dtype)[6:]:8s} largest difference / largest value: "
                  + ", ".join(f"{what} {e:.1e}" for what, e in errors.items()))
            assert all(e < tolerance for e in errors.values()), f"{name}: differs from the formula"


def forward_backward(si_conv2d, layers):
    # The output's gradient comes in the output's own layout, as the ReLU and max-pool after the layer
    # hand it back: channels-first for the formula's maps, channels-last for the torch backend's
    grads = [(grad, grad.contiguous(memory_format=torch.channels_last)) for *_, grad in layers]

    def run():
        for (_, x, conv, scales, size, _), (grad, grad_channels_last) in zip(layers, grads):
            out = si_conv2d(x, conv, scales, size)
            out.backward(grad if out.is_contiguous() else grad_channels_last)
    return run


def training_step(module, si_conv2d, state, x, labels):
    model = module.build()
    model.load_state_dict(state)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step():
        module.si_conv2d = si_conv2d  # the generated forward calls the module's si_conv2d
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()
        optimizer.step()
    return step


def median_ms(runs: dict, repeats: int) -> dict[str, float]:
    for run in runs.values():  # warm-up
        run(), run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def report(what: str, ms: dict[str, float], batch: int) -> None:
    print(what)
    for name, t in ms.items():
        print(f"  {name:8s} {t:9.1f} ms  {batch / t * 1e3:8.1f} img/s")
    print(f"  speed-up {ms['formula'] / ms['netdsl']:9.2f}x")


def profile(runs: dict) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler
    for name, run in runs.items():
        run()
        with profiler(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                run()
        print(f"{name}: 3 runs of forward+backward, per op")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("net", nargs="?", default="nets/mnist_scale_si.net")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's)")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of each")
    parser.add_argument("--no-step", action="store_true", help="leave out the whole training step")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = netdsl.parse_file(args.net)
    module = netdsl.load_source(netdsl.generate_source(net, backend="torch"))
    ours = module.si_conv2d
    print(f"{net.name}: its SI layers at batch {args.batch}, float32, {torch.get_num_threads()} threads")
    check(net, module, ours, args.batch)
    layers = si_layers(net, module.build(), args.batch)
    runs = {"formula": forward_backward(formula_si_conv2d, layers), "netdsl": forward_backward(ours, layers)}
    report(f"SI layers forward+backward ({', '.join(name for name, *_ in layers)}), median of {args.repeats}",
           median_ms(runs, args.repeats), args.batch)
    if not args.no_step:
        state = module.build().state_dict()
        i = net.input_shape
        x, labels = torch.rand(args.batch, *i), torch.randint(0, net.layers[-1].out_shape.c, (args.batch,))
        steps = {"formula": training_step(module, formula_si_conv2d, state, x, labels),
                 "netdsl": training_step(module, ours, state, x, labels)}
        report(f"training step (forward, loss, backward, SGD), median of {args.repeats}",
               median_ms(steps, args.repeats), args.batch)
    if args.profile:
        profile(runs)


if __name__ == "__main__":
    main()
