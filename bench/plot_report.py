"""Draw bench/bandwidth_report.py's JSON: a roofline-style plot and a speedup plot, to PNG.

    python bench/plot_report.py [REPORT.json] [--out PLOT.png]

Left: achieved GB/s (28 bytes per float32 element) against size, with the bandwidth probe at
the same thread count drawn as the ceiling. Right: speedup of fastadam over torch.optim.Adam
(fused) and over the NumPy reference, each side at its best thread count for the size. Third panel: the many-tensor cases beside the flat
tensor of the same total. Needs matplotlib; without it the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", nargs="?", default=str(RESULTS / "bandwidth.json"))
    ap.add_argument("--out", help="PNG path (default: the report's path with .png)")
    args = ap.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot drawn (pip install matplotlib)")
        return 0
    path = Path(args.report)
    if not path.exists():
        print(f"{path} does not exist: run python bench/bandwidth_report.py first")
        return 1
    report = json.loads(path.read_text())
    out = Path(args.out) if args.out else path.with_suffix(".png")
    draw(report, out, plt)
    print(f"wrote {out}")
    return 0


# contestant key pattern -> (label, color, line style)
STYLES = [
    ("probe {T}t", "probe (ceiling), {T} threads", "black", "--"),
    ("probe 1t", "probe (ceiling), 1 thread", "grey", ":"),
    ("fastadam {T}t", "fastadam, {T} threads", "tab:blue", "-"),
    ("Adam.step {T}t", "fastadam.Adam.step, {T} threads", "tab:cyan", "-"),
    ("fastadam 1t", "fastadam, 1 thread", "tab:blue", ":"),
    ("torch fused {T}t", "torch fused, {T} threads", "tab:red", "-"),
    ("torch fused 1t", "torch fused, 1 thread", "tab:red", ":"),
    ("torch default {T}t", "torch default, {T} threads", "tab:orange", "-"),
    ("reference 1t", "NumPy reference", "tab:green", "-"),
]


def draw(report: dict, out: Path, plt) -> None:
    threads = report["machine"]["threads"]
    sized = [c for c in report["cases"] if c["case"].startswith("n=")]
    sized.sort(key=lambda c: c["elements"])
    multi = [c for c in report["cases"] if not c["case"].startswith("n=")]
    fig, (ax_bw, ax_up, ax_multi) = plt.subplots(
        1, 3, figsize=(18, 5.5), gridspec_kw={"width_ratios": [3, 3, 2]}
    )

    for key, label, color, style in STYLES:
        key, label = key.format(T=threads), label.format(T=threads)
        xs = [c["elements"] for c in sized if key in c["results"]]
        ys = [c["results"][key]["gb_per_s"] for c in sized if key in c["results"]]
        if xs:
            ax_bw.plot(xs, ys, style, color=color, marker="o", ms=3, label=label)
    ax_bw.set_xscale("log", base=2)
    ax_bw.set_xlabel("float32 elements per step")
    ax_bw.set_ylabel("GB/s (28 bytes per element)")
    ax_bw.set_title("Achieved bandwidth; the probe (same traffic, no math) is the ceiling")
    ax_bw.grid(True, which="both", alpha=0.3)
    ax_bw.legend(fontsize=7, loc="upper left")

    # Each side at its best thread count for the size (bandwidth_report.py's summary).
    summary = {row["case"]: row for row in report.get("summary", [])}

    def ratio(case: dict, name: str, base: str) -> float | None:
        row = summary.get(case["case"])
        if not row or not row.get(name):
            return None
        if base == "reference":
            return row["reference"] / row[name]["seconds"] if row.get("reference") else None
        return row[base]["seconds"] / row[name]["seconds"] if row.get(base) else None

    for name, base, label, color, style in (
        ("fastadam", "torch fused", "fastadam vs torch fused, each at its best", "tab:red", "-"),
        (
            "Adam.step",
            "torch fused",
            "Adam.step vs torch fused, each at its best",
            "tab:purple",
            "-",
        ),
        ("fastadam", "reference", "fastadam (best) vs NumPy reference", "tab:green", "-"),
    ):
        pts = [(c["elements"], ratio(c, name, base)) for c in sized]
        pts = [pt for pt in pts if pt[1]]
        if pts:
            ax_up.plot(*zip(*pts), style, color=color, marker="o", ms=3, label=label)
    ax_up.axhline(1.0, color="black", lw=0.8)
    ax_up.set_xscale("log", base=2)
    ax_up.set_yscale("log")
    ax_up.set_xlabel("float32 elements per step")
    ax_up.set_ylabel("speedup (x)")
    ax_up.set_title("Speedups, median of interleaved rounds; best of 1 and all threads")
    ax_up.grid(True, which="both", alpha=0.3)
    ax_up.legend(fontsize=7)

    draw_multi(ax_multi, multi, threads)
    m = report["machine"]
    fig.suptitle(
        f"fastadam {m['fastadam']} ({m['isa']}) on {m['cpu']}, {m['threads']} threads; "
        f"torch {m['torch']}; {m['date']}",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def draw_multi(ax, cases: list[dict], threads: int) -> None:
    """Bars of GB/s for the many-tensor cases and the flat tensor of the same total."""
    keys = [
        (f"fastadam {threads}t", "fastadam", "tab:blue"),
        (f"Adam.step {threads}t", "Adam.step", "tab:cyan"),
        (f"torch fused {threads}t", "torch fused", "tab:red"),
        (f"probe {threads}t", "probe", "black"),
    ]
    width = 0.8 / len(keys)
    for i, (key, label, color) in enumerate(keys):
        xs, ys = [], []
        for j, case in enumerate(cases):
            row = case["results"].get(key)
            if row:
                xs.append(j + (i - (len(keys) - 1) / 2) * width)
                ys.append(row["gb_per_s"])
        if xs:
            ax.bar(xs, ys, width, color=color, label=label, alpha=0.8)
    ax.set_xticks(range(len(cases)), [c["case"] for c in cases])
    total = cases[0]["elements"] if cases else 0
    ax.set_title(f"Many tensors vs one flat tensor\n({total:,} elements, {threads} threads)")
    ax.set_ylabel("GB/s (28 bytes per element)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)


if __name__ == "__main__":
    sys.exit(main())
