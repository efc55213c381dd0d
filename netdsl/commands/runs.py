"""`netdsl runs RUN...`: a table of run folders, one row a run (netdsl/runner/runs.py reads them).

    netdsl runs runs/*                    # the table
    netdsl runs runs/a runs/b --json      # the same as a JSON list of objects, for scripts

Each row: the folder, the network, how its recipe differs from the first run's (`netdsl diff`'s
`recipe:` lines), epochs done, the best validation top-1 error and its epoch, the test error of
the newest `netdsl eval --split test --json RUN/FILE.json` in the folder, the wall time (from
provenance.jsonl's segments, or the epochs' times: `wall_time_from`), the median images/s and the
commit (`+dirty` if any segment ran from a changed tree). A folder without metrics.jsonl is not a
run: one line, exit status 2. docs/tables.py turns the JSON into docs/results.md's rows.
"""
from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders that netdsl train wrote")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list, one object a run (fractions and seconds as recorded)")


def run(args) -> int:
    from ..runner import runs

    found = [runs.read_run(path) for path in args.runs]
    print(json.dumps(runs.as_json(found), indent=1) if args.json else runs.table(found))
    return 0
