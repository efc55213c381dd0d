"""The mutation fuzzer (tests/fuzzing.py) over the seed networks and the broken corpus.

    python -m pytest tests/test_fuzz.py

A fixed set of mutants must each compile and run, or raise a positioned NetError, within a
second (the contract in tests/fuzzing.py); bench/fuzz.py runs the same fuzzer for longer.
The other tests hold the harness itself: the same seed gives the same mutants, every kind of
mutation and hostile value is drawn, and a broken contract is reported, not passed over.
"""
import time
from collections import Counter

import pytest
import torch

import netdsl
from fuzzing import MUTANT_SECONDS, Budget, Mutator, load_seeds, plan, try_mutant, warm_up

SEED = 20260601
MUTANTS = 2000


@pytest.fixture(scope="module")
def seeds():
    return load_seeds()


@pytest.fixture
def one_thread(monkeypatch, tmp_path):
    """One CPU thread, as the mutants are small, and the generated modules in a folder of the test's."""
    monkeypatch.setenv("NETDSL_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_mutant_compiles_and_runs_or_raises_a_positioned_error_within_a_second(seeds, one_thread):
    mutator = Mutator(seeds, SEED)
    warm_up(seeds)
    outcomes, broken, slowest = Counter(), [], 0.0
    for mutant in mutator.mutants(MUTANTS):
        start = time.perf_counter()
        outcome = try_mutant(mutant.data)
        slowest = max(slowest, time.perf_counter() - start)
        outcomes[outcome.kind] += 1
        if outcome.kind == "violation":  # a crash, an error without a line, or a mutant over a second
            broken.append(f"{mutant.seed} {list(mutant.steps)}:\n{outcome.detail}")
    assert broken == []
    assert slowest < MUTANT_SECONDS
    assert sum(outcomes.values()) == MUTANTS
    # Both sides of the contract are exercised: mutants that run for real, on the meta
    # device, and ones that are refused.
    assert outcomes["run"] >= 50 and outcomes["shapes"] >= 20 and outcomes["build"] >= 10
    assert outcomes["NetError"] >= MUTANTS // 2


def test_the_same_seed_gives_the_same_mutants(seeds):
    first = list(Mutator(seeds, 7).mutants(30))
    assert first == list(Mutator(seeds, 7).mutants(30))
    assert first != list(Mutator(seeds, 8).mutants(30))
    assert sum(mutant.data != seeds[mutant.seed] for mutant in first) >= 27  # a line swapped with itself is not


def test_every_mutation_and_every_kind_of_hostile_value_is_drawn(seeds):
    mutator = Mutator(seeds, SEED)
    steps = [step for mutant in mutator.mutants(MUTANTS) for step in mutant.steps]
    drawn = {step.split(":")[0] for step in steps}
    assert drawn == set(mutator.mutations)
    text = "\n".join(steps)
    for hostile in ("normal(normal(", "1e400", "9999999999", "3x99999x99999", "__init__", "(100000 chars)"):
        assert hostile in text, hostile
    assert {seed for seed in seeds if seed.startswith("nets/")} <= {m.seed for m in Mutator(seeds, SEED).mutants(200)}


def test_a_broken_contract_is_reported(monkeypatch, seeds):
    net = seeds["nets/mnist_scale_cnn.net"]
    assert try_mutant(net).kind == "run"

    def crash(*args, **kwargs):
        raise ValueError("a crash in the compiler")
    monkeypatch.setattr(netdsl, "compile_net", crash)
    outcome = try_mutant(net)
    assert outcome.kind == "violation" and "ValueError: a crash in the compiler" in outcome.detail


def test_a_slow_mutant_is_reported(monkeypatch, seeds):
    monkeypatch.setattr("fuzzing.MUTANT_SECONDS", 0.0)
    outcome = try_mutant(seeds["tests/broken/bad_init_std.net"])
    assert outcome.kind == "violation" and outcome.detail.startswith("took ")


def test_an_error_without_a_line_is_reported(monkeypatch, seeds):
    def unpositioned(*args, **kwargs):
        raise netdsl.NetError("somewhere")
    monkeypatch.setattr(netdsl, "parse_string", unpositioned)
    outcome = try_mutant(seeds["nets/mnist_scale_cnn.net"])
    assert outcome.kind == "violation" and "without a line" in outcome.detail


def test_the_budget_runs_small_networks_and_checks_large_ones_on_the_meta_device(seeds):
    nets = {name: netdsl.parse_string(data, name) for name, data in seeds.items() if name.startswith("nets/")}
    assert plan(nets["nets/mnist_scale_cnn.net"]) == "run"
    assert plan(nets["nets/mnist_scale_si.net"]) == "run"      # 12 SI scales, small maps
    assert plan(nets["nets/alexnet.net"]) == "shapes"           # 61 M parameters
    assert plan(nets["nets/si_alexnet.net"]) == "build"         # 15 SI scales on the meta device
    assert plan(nets["nets/mnist_scale_cnn.net"], Budget(params=100_000)) == "shapes"


def test_an_lrn_window_wider_than_the_channels_runs_at_the_cost_of_one_that_spans_them(one_thread):
    """Found by the fuzzer: the torch LRN looped size // 2 times whatever the channel count."""
    def lrn_net(size):
        return netdsl.parse_string(f"[data]\ntype = data\nshape = 6x5x5\n[norm]\ntype = lrn\nsize = {size}\n"
                                   "[prob]\ntype = softmax\n")
    x = torch.randn(1, 6, 5, 5)
    start = time.perf_counter()
    wide = netdsl.compile_net(lrn_net(2**31 - 1), backend="torch")(x)
    assert time.perf_counter() - start < MUTANT_SECONDS
    spanning = netdsl.compile_net(lrn_net(11), backend="torch")(x)   # 2 * 6 - 1: every window spans all 6
    narrower = netdsl.compile_net(lrn_net(9), backend="torch")(x)
    assert torch.equal(wide, spanning) and not torch.equal(wide, narrower)
