"""The fault matrix of tests/faultmatrix.py, every case run and tabled: how each run ended.

    python bench/faults.py                          # each run a fresh interpreter, two at a time
    python bench/faults.py --fork --json faults.json

Each case is `netdsl train` on tiny data with one fault injected at epoch 2 (a full disk at each
file, a NaN loss, a bad image, an exception, a signal, a killed loader worker), with 0 and with 2
loader workers a process, in one process or in two started as torchrun starts them. A row gives
each process's exit status, the seconds from its start to its exit, the debris it left (temporary
files; processes of its session alive after it, such as a loader worker), whether --resume from
its last checkpoint ended with the weights of a run never stopped (`equal`; `resumed` for two
processes, whose sums round otherwise), and `ok` where everything is as tests/test_fault_matrix.py
requires, or what is not. Exit status 1 if any row is not ok.

--fork forks each run from one process that has imported torch and netdsl (as the tests do),
saving the 4 s of imports each; without it each run is a fresh `python`, as a user's is.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import faultmatrix  # noqa: E402


def row(result: faultmatrix.Result) -> dict:
    outcomes = result.outcomes
    debris = sum(len(o.temporaries) for o in outcomes), sum(o.survivors for o in outcomes)
    return {"case": result.case.name, "workers": result.workers,
            "status": [o.status for o in outcomes], "seconds": round(max(o.seconds for o in outcomes), 2),
            "temporary_files": debris[0], "surviving_processes": debris[1], "resumed": result.resumed,
            "failures": result.failures}


def table(rows: list[dict]) -> str:
    lines = ["| case | workers | exit status | seconds to exit | debris | resumed | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        debris = "none" if not (r["temporary_files"] or r["surviving_processes"]) else \
            f"{r['temporary_files']} files, {r['surviving_processes']} processes"
        verdict = "ok" if not r["failures"] else "; ".join(r["failures"])
        lines.append(f"| {r['case']} | {r['workers']} | {' / '.join(map(str, r['status']))} | "
                     f"{r['seconds']:.1f} | {debris} | {r['resumed']} | {verdict} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fork", action="store_true", help="fork each run from one process with torch imported")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    launcher = faultmatrix.Zygote() if args.fork else faultmatrix.Spawn()
    try:
        with tempfile.TemporaryDirectory() as root:
            results = faultmatrix.run_matrix(Path(root), parallel=args.parallel, launcher=launcher)
    finally:
        if args.fork:
            launcher.close()
    rows = [row(result) for result in results]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"launcher": "fork" if args.fork else "spawn", "parallel": args.parallel,
                                         "bound_s": faultmatrix.BOUND_S, "rows": rows}, indent=1) + "\n")
    return 0 if all(not r["failures"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
