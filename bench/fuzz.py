"""The mutation fuzzer of tests/fuzzing.py, run long: mutants of the seed files against the contract.

    python bench/fuzz.py --mutants 100000 --seed 1 --json fuzz.json
    python bench/fuzz.py --mutants 2000 --seed 7 --violations runs/fuzz-violations

Prints the mutant count, how many compiled (and ran for real, ran on the meta device, or were
only built) and how many raised NetError, every contract violation, and the slowest mutant.
Each violating mutant is saved to the --violations folder as `<n>.net`, the bytes that broke
the contract, beside `<n>.txt` saying how; a saved mutant can become a case of tests/broken/.
The generated modules go to a temporary NETDSL_CACHE, removed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch  # noqa: E402

from fuzzing import Mutant, Mutator, Outcome, load_seeds, try_mutant, warm_up  # noqa: E402


def save_violation(folder: Path, index: int, mutant: Mutant, outcome: Outcome) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{index}.net").write_bytes(mutant.data)
    steps = "\n".join(f"  {step}" for step in mutant.steps)
    (folder / f"{index}.txt").write_text(f"seed: {mutant.seed}\nmutations:\n{steps}\n\n{outcome.detail}\n")


def report_line(done: int, counts: Counter, slowest: float, started: float) -> str:
    rate = done / max(time.perf_counter() - started, 1e-9)
    shown = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
    return f"{done} mutants ({rate:.0f}/s): {shown}; slowest {slowest:.3f} s"


def fuzz(count: int, seed: int, folder: Path, every: int) -> dict:
    mutator = Mutator(load_seeds(), seed)
    warm_up(mutator.seeds)
    counts: Counter = Counter()
    violations, slowest, seconds = [], {"seconds": 0.0}, []
    started = time.perf_counter()
    for index, mutant in enumerate(mutator.mutants(count), 1):
        outcome = try_mutant(mutant.data)
        counts[outcome.kind] += 1
        seconds.append(outcome.seconds)
        if outcome.seconds > slowest["seconds"]:
            slowest = {"seconds": outcome.seconds, "index": index, "seed": mutant.seed,
                       "mutations": list(mutant.steps), "outcome": outcome.kind}
        if outcome.kind == "violation":
            save_violation(folder, index, mutant, outcome)
            violations.append({"index": index, "seed": mutant.seed, "mutations": list(mutant.steps),
                               "detail": outcome.detail, "saved": str(folder / f"{index}.net")})
            print(f"VIOLATION {index}: {mutant.seed} {list(mutant.steps)}\n{outcome.detail}", flush=True)
        if index % every == 0:
            print(report_line(index, counts, slowest["seconds"], started), flush=True)
    return {"mutants": count, "seed": seed, "outcomes": dict(counts),
            "compiled": sum(counts[k] for k in ("run", "shapes", "build")),
            "violations": violations, "slowest": slowest,
            "median_seconds": statistics.median(seconds), "p99_seconds": statistics.quantiles(seconds, n=100)[-1],
            "wall_seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    parser.add_argument("--violations", type=Path, default=Path("runs/fuzz-violations"),
                        help="folder for the mutants that break the contract")
    parser.add_argument("--every", type=int, default=1000, help="print progress every N mutants")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NETDSL_CACHE"] = cache
        summary = fuzz(args.mutants, args.seed, args.violations, args.every)
    print(json.dumps({k: v for k, v in summary.items() if k != "violations"}, indent=1))
    print(f"{len(summary['violations'])} violations")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
