"""Write the result tables of docs/scale-invariance.md from the files reproduce.sh leaves.

    python docs/scale-invariance/summarize.py

Reads docs/scale-invariance/runs/<net>-split<k>/{metrics.jsonl,test.txt}, error-by-scale.txt
and invariance.txt, and replaces the text between `<!-- results -->` and `<!-- /results -->`
in docs/scale-invariance.md, so every figure there comes from a run. Splits whose two runs
have not both finished are listed as pending, not averaged.

The comparison is paired: both networks of a split share its data and its seed, so the
statistic is the per-split difference d = SI - CNN in test error. Two tests of d, both
two-sided: the paired t test (t = mean(d) / (std(d) / sqrt(n)), n - 1 degrees of freedom),
and the exact sign test (the count of splits where SI is better, against Binomial(n, 1/2)).
With n splits the sign test cannot go below p = 2 / 2^n: 0.25 for three.
"""
import json
import math
import re
import statistics
from pathlib import Path

HERE = Path(__file__).parent
DOC = HERE.parent / "scale-invariance.md"
NETS = ("mnist_scale_cnn", "mnist_scale_si")
EPOCHS = 60


def test_error(run: Path) -> float | None:
    """Top-1 test error in percent, from `netdsl eval`'s line in test.txt; None before it exists."""
    path = run / "test.txt"
    if not path.exists():
        return None
    return float(re.search(r"top-1 error ([0-9.]+)%", path.read_text()).group(1))


def epochs(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def student_t_two_sided(t: float, dof: int) -> float:
    """P(|T| >= |t|) for Student's t with dof degrees of freedom: its density integrated by
    Simpson's rule from 0 to |t| (the density is smooth, so 20,000 panels are ample)."""
    norm = math.exp(math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2)) / math.sqrt(dof * math.pi)
    density = lambda x: norm * (1 + x * x / dof) ** (-(dof + 1) / 2)
    panels, upper = 20_000, abs(t)
    h = upper / panels
    inner = sum((4 if i % 2 else 2) * density(i * h) for i in range(1, panels))
    half_mass = h / 3 * (density(0) + inner + density(upper))
    return max(0.0, 1 - 2 * half_mass)


def sign_test_two_sided(better: int, n: int) -> float:
    """Exact two-sided sign test: twice the smaller binomial tail, capped at 1."""
    tail = min(better, n - better)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(tail + 1)) / 2 ** n)


def paired_tests(differences: list[float]) -> list[str]:
    n = len(differences)
    better = sum(d < 0 for d in differences)
    lines = [f"- SI better on {better} of {n} splits; sign test p = {sign_test_two_sided(better, n):.3f} "
             f"(two-sided; the smallest p that {n} split{'s' if n > 1 else ''} allow{'' if n > 1 else 's'} "
             f"is {min(1.0, 2 / 2 ** n):.3f})."]
    if n >= 2 and statistics.stdev(differences) > 0:
        mean, std = statistics.mean(differences), statistics.stdev(differences)
        t = mean / (std / math.sqrt(n))
        lines.append(f"- Paired t test: mean difference {mean:+.2f} points, std {std:.2f}, "
                     f"t = {t:.2f} with {n - 1} degrees of freedom, p = {student_t_two_sided(t, n - 1):.3f} "
                     "(two-sided).")
    else:
        lines.append("- Paired t test: needs at least two finished splits.")
    return lines


def splits() -> list[int]:
    return sorted({int(p.name.rsplit("split", 1)[1]) for p in (HERE / "runs").iterdir()})


def error_table(done: list[int], pending: list[int]) -> list[str]:
    lines = ["| split | mnist_scale_cnn | mnist_scale_si | SI - CNN |", "| --- | --- | --- | --- |"]
    errors = {net: [test_error(HERE / "runs" / f"{net}-split{k}") for k in done] for net in NETS}
    for k, cnn, si in zip(done, *errors.values()):
        lines.append(f"| {k} | {cnn:.2f}% | {si:.2f}% | {si - cnn:+.2f} |")
    if len(done) >= 2:
        cnn, si = errors.values()
        diffs = [b - a for a, b in zip(cnn, si)]
        lines.append(f"| mean +- std | {statistics.mean(cnn):.2f}% +- {statistics.stdev(cnn):.2f} | "
                     f"{statistics.mean(si):.2f}% +- {statistics.stdev(si):.2f} | "
                     f"{statistics.mean(diffs):+.2f} +- {statistics.stdev(diffs):.2f} |")
    for k in pending:  # a finished run's error is shown, but kept out of the means and tests
        shown = [test_error(HERE / "runs" / f"{net}-split{k}") for net in NETS]
        lines.append(f"| {k} | " + " | ".join("pending" if e is None else f"{e:.2f}%" for e in shown) + " | |")
    cnn, si = errors.values()
    lines += [""] + (paired_tests([b - a for a, b in zip(cnn, si)]) if done else ["- No split has finished."])
    return lines


def epoch_table(ks: list[int]) -> list[str]:
    lines = ["| run | epochs | train loss | best val top-1 (epoch) | last lr | images/s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for net in NETS:
        for k in ks:
            records = epochs(HERE / "runs" / f"{net}-split{k}")
            if not records:
                continue
            last, best = records[-1], min(records, key=lambda r: r["val_top1_err"])
            lines.append(f"| {net}-split{k} | {last['epoch']}/{EPOCHS} | {last['train_loss']:.4f} | "
                         f"{100 * best['val_top1_err']:.2f}% ({best['epoch']}) | {last['lr']:g} | "
                         f"{statistics.median(r['images_per_s'] for r in records):.0f} |")
    return lines


def tables() -> str:
    ks = splits()
    done = [k for k in ks if all(test_error(HERE / "runs" / f"{net}-split{k}") is not None for net in NETS)]
    pending = [k for k in ks if k not in done]
    lines = ["Test error (top-1, all 50,000 test images, the best-validation checkpoint):", ""]
    lines += error_table(done, pending)
    lines += ["", "Each run from its metrics.jsonl (images/s: the median epoch's):", ""] + epoch_table(ks)
    for name, title in (("error-by-scale.txt", "Error against scale (split 0)"),
                        ("invariance.txt", "Invariance score (split 0)")):
        if (HERE / name).exists():
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
