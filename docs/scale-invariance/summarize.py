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


def p_value(p: float) -> str:
    """Three decimals, or two significant digits below 0.001, so that a small p is not shown as 0."""
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


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
                     f"t = {t:.2f} with {n - 1} degrees of freedom, p = {p_value(student_t_two_sided(t, n - 1))} "
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
    lines += scale_tables()
    return "\n".join(lines)


def printed(kind: str) -> dict[int, str]:
    """Split -> the output of `netdsl eval --scales` (kind error-by-scale) or `netdsl invariance`."""
    return {int(path.stem.rsplit("split", 1)[1]): path.read_text() for path in HERE.glob(f"{kind}-split*.txt")}


def error_by_scale(text: str) -> dict[str, tuple[float, float]]:
    """Scale (and `mean`) -> (CNN, SI) top-1 error in percent."""
    rows = re.findall(r"^\s*([0-9.]+|mean)\s+([0-9.]+)%\s+([0-9.]+)%$", text, re.M)
    return {scale: (float(cnn), float(si)) for scale, cnn, si in rows}


def invariance(text: str) -> dict[str, tuple[float, float]]:
    """Layer -> (CNN, SI) mean invariance score."""
    rows = re.findall(r"^(\w+)\s+([0-9.]+) \(\d+/\d+\)\s+([0-9.]+) \(\d+/\d+\)$", text, re.M)
    return {layer: (float(cnn), float(si)) for layer, cnn, si in rows}


def mean_table(by_split: dict[int, dict[str, tuple[float, float]]], head: str, unit: str, digits: int,
               better: str) -> list[str]:
    """Per row, each network's mean over the splits, SI - CNN, and on how many splits SI is `better`."""
    ks = sorted(by_split)
    ahead = (lambda cnn, si: si < cnn) if better == "lower" else (lambda cnn, si: si > cnn)
    lines = [f"| {head} | mnist_scale_cnn | mnist_scale_si | SI - CNN | SI {better} on |",
             "| --- | --- | --- | --- | --- |"]
    for row in by_split[ks[0]]:
        cnn = statistics.mean(by_split[k][row][0] for k in ks)
        si = statistics.mean(by_split[k][row][1] for k in ks)
        wins = sum(ahead(*by_split[k][row]) for k in ks)
        lines.append(f"| {row} | {cnn:.{digits}f}{unit} | {si:.{digits}f}{unit} | {si - cnn:+.{digits}f} | "
                     f"{wins} of {len(ks)} |")
    return lines


def scale_tables() -> list[str]:
    lines = []
    for kind, parse, title, head, unit, digits, better in (
            ("error-by-scale", error_by_scale, "Error against scale (top-1 %, 5,000 test images of each split "
             "shown at each scale)", "scale", "%", 2, "lower"),
            ("invariance", invariance, "Invariance score (0..100, mean over a layer's scored units, 2,000 "
             "test images of each split)", "layer", "", 1, "higher")):
        texts = printed(kind)
        if not texts:
            continue
        ks = sorted(texts)
        lines += ["", f"{title}, mean over split{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))}:", ""]
        lines += mean_table({k: parse(texts[k]) for k in ks}, head, unit, digits, better)
        for k in ks:
            lines += ["", f"Split {k}, as the command printed it:", "", "```", texts[k].rstrip(), "```"]
    return lines


def main() -> None:
    text = DOC.read_text()
    start, end = "<!-- results -->", "<!-- /results -->"
    before, rest = text.split(start)
    _, after = rest.split(end)
    DOC.write_text(f"{before}{start}\n{tables()}\n{end}{after}")


if __name__ == "__main__":
    main()
