"""Write the result tables of docs/scale-invariance.md from the files reproduce.sh leaves.

    python docs/scale-invariance/summarize.py

Reads docs/scale-invariance/runs/<net>-split<k>/{metrics.jsonl,test.txt}, error-by-scale.txt
and invariance.txt, and replaces the text between `<!-- results -->` and `<!-- /results -->`
in docs/scale-invariance.md, so every figure there comes from a run.
"""
import json
import re
import statistics
from pathlib import Path

HERE = Path(__file__).parent
DOC = HERE.parent / "scale-invariance.md"
NETS = ("mnist_scale_cnn", "mnist_scale_si")


def test_error(run: Path) -> float:
    """Top-1 test error in percent, from `netdsl eval`'s line in test.txt."""
    match = re.search(r"top-1 error ([0-9.]+)%", (run / "test.txt").read_text())
    return float(match.group(1))


def last_epoch(run: Path) -> dict:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


def tables() -> str:
    splits = sorted({int(p.name.rsplit("split", 1)[1]) for p in (HERE / "runs").iterdir()})
    lines = ["| network | " + " | ".join(f"split {k}" for k in splits) + " | mean | std |",
             "| --- |" + " --- |" * (len(splits) + 2)]
    for net in NETS:
        errors = [test_error(HERE / "runs" / f"{net}-split{k}") for k in splits]
        lines.append(f"| {net} | " + " | ".join(f"{e:.2f}%" for e in errors)
                     + f" | {statistics.mean(errors):.2f}% | {statistics.stdev(errors):.2f} |")
    lines += ["", "Last epoch of each run (from its metrics.jsonl):", "",
              "| run | epochs | train loss | val top-1 | lr | images/s |", "| --- | --- | --- | --- | --- | --- |"]
    for net in NETS:
        for k in splits:
            m = last_epoch(HERE / "runs" / f"{net}-split{k}")
            lines.append(f"| {net}-split{k} | {m['epoch']} | {m['train_loss']:.4f} | "
                         f"{100 * m['val_top1_err']:.2f}% | {m['lr']:g} | {m['images_per_s']:.0f} |")
    for name, title in (("error-by-scale.txt", "Error against scale (split 0)"),
                        ("invariance.txt", "Invariance score (split 0)")):
        lines += ["", f"{title}, as the command printed it:", "", "```",
                  (HERE / name).read_text().rstrip(), "```"]
    return "\n".join(lines)


def main() -> None:
    text = DOC.read_text()
    start, end = "<!-- results -->", "<!-- /results -->"
    before, rest = text.split(start)
    _, after = rest.split(end)
    DOC.write_text(f"{before}{start}\n{tables()}\n{end}{after}")


if __name__ == "__main__":
    main()
