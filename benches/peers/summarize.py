#!/usr/bin/env python3
"""Summarises one run of benches/peers/run.sh: medians per (case, workload), the goals' ratios
(every ratio from the same run), a markdown table (summary.md) and a grouped bar chart (peers.svg,
written directly: no plotting library needed).

    summarize.py results/peers.csv results/ --stamp ... --ios N --load "a -> b" --versions "..."
"""

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

CASES = ["umbra-serve", "umbra-volatile", "umbra-nbdkit", "qcow2-overlay", "nbdkit-cow", "raw"]
WORKLOADS = ["randwrite-qd1", "randwrite-qd32", "randread-qd1", "randread-qd32"]
# (numerator, denominator, workloads, at least): the goals, plus the plugin's figure.
GOALS = [
    ("umbra-serve", "qcow2-overlay", ["randwrite-qd1", "randwrite-qd32"], 1.5),
    ("umbra-volatile", "nbdkit-cow", ["randwrite-qd1", "randwrite-qd32"], 1.0),
    ("umbra-serve", "nbdkit-cow", ["randwrite-qd1", "randwrite-qd32"], None),
    ("umbra-nbdkit", "qcow2-overlay", ["randwrite-qd1", "randwrite-qd32"], None),
    ("umbra-nbdkit", "nbdkit-cow", ["randwrite-qd1", "randwrite-qd32"], None),
]
COLOURS = ["#1f5fa8", "#6aa3e0", "#2e9e5b", "#c0392b", "#e67e22", "#7f7f7f"]


def load(path):
    runs = defaultdict(list)
    missing = set()
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["case"], row["workload"])
            if row["iops"] == "missing":
                missing.add(key)
            else:
                runs[key].append(float(row["iops"]))
    return runs, missing


def fmt(x):
    return "missing" if x is None else f"{x:,.0f}"


def summary(runs, missing, args):
    med = {k: statistics.median(v) for k, v in runs.items()}
    cases = [c for c in CASES if any((c, w) in med or (c, w) in missing for w in WORKLOADS)]
    lines = [
        f"Run {args.stamp}: {args.ios} I/Os of 4 KiB per run, {args.reps} runs per cell, medians in IOPS "
        f"(each run's figures in peers.csv). Load average (1, 5, 15 min) {args.load}. "
        f"{args.versions}.",
        "",
        "| case | " + " | ".join(WORKLOADS) + " |",
        "|---|" + "---|" * len(WORKLOADS),
    ]
    for c in cases:
        cells = []
        for w in WORKLOADS:
            v = med.get((c, w))
            spread = ""
            if v is not None and len(runs[(c, w)]) > 1:
                spread = f" ({min(runs[(c, w)]):,.0f}-{max(runs[(c, w)]):,.0f})"
            cells.append(fmt(v) + spread)
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "| ratio (medians, same run) | " + " | ".join(
        w for w in GOALS[0][2]) + " | goal |", "|---|---|---|---|"]
    for num, den, ws, at_least in GOALS:
        cells = []
        verdicts = []
        for w in ws:
            a, b = med.get((num, w)), med.get((den, w))
            if a is None or b is None:
                cells.append("missing")
                verdicts.append(None)
            else:
                cells.append(f"{a / b:.2f}x")
                verdicts.append(a / b >= at_least if at_least else None)
        if at_least is None:
            goal = "(no goal)"
        elif None in verdicts:
            goal = f">= {at_least}x: not measured"
        else:
            goal = f">= {at_least}x: " + ("met" if all(verdicts) else "missed")
        lines.append(f"| {num} / {den} | " + " | ".join(cells) + f" | {goal} |")
    return "\n".join(lines) + "\n", med, cases


def svg(med, cases, title):
    width, height, left, bottom, top = 900, 420, 70, 60, 40
    plot_w, plot_h = width - left - 20, height - bottom - top
    peak = max(med.values()) if med else 1
    step = 10 ** (len(str(int(peak))) - 1)
    ymax = (int(peak / step) + 1) * step
    group_w = plot_w / len(WORKLOADS)
    bar_w = group_w * 0.8 / max(len(cases), 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20 * len(cases) // 3 + 20}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
    ]
    for i in range(6):
        v = ymax * i / 5
        y = top + plot_h - plot_h * i / 5
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 20}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:,.0f}</text>')
    out.append(f'<text x="14" y="{top + plot_h / 2}" transform="rotate(-90 14 {top + plot_h / 2})" '
               'text-anchor="middle">IOPS (median of 3)</text>')
    for g, w in enumerate(WORKLOADS):
        x0 = left + g * group_w + group_w * 0.1
        for i, c in enumerate(cases):
            v = med.get((c, w))
            x = x0 + i * bar_w
            if v is None:
                out.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - 4}" text-anchor="middle" '
                           'font-size="9">n/a</text>')
                continue
            h = plot_h * v / ymax
            out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w * 0.9:.1f}" '
                       f'height="{h:.1f}" fill="{COLOURS[CASES.index(c)]}"><title>{c} {w}: '
                       f'{v:,.0f} IOPS</title></rect>')
        out.append(f'<text x="{left + g * group_w + group_w / 2:.1f}" y="{top + plot_h + 18}" '
                   f'text-anchor="middle">{w}</text>')
    for i, c in enumerate(cases):
        x = left + (i % 3) * 260
        y = top + plot_h + 40 + (i // 3) * 20
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{COLOURS[CASES.index(c)]}"/>')
        out.append(f'<text x="{x + 18}" y="{y}">{c}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("out")
    p.add_argument("--stamp", default="")
    p.add_argument("--ios", default="")
    p.add_argument("--reps", default="3")
    p.add_argument("--load", default="")
    p.add_argument("--versions", default="")
    args = p.parse_args()
    runs, missing = load(args.csv)
    text, med, cases = summary(runs, missing, args)
    out = Path(args.out)
    (out / "summary.md").write_text(text)
    (out / "peers.svg").write_text(svg(med, cases, f"fio 4 KiB over NBD (unix socket), {args.stamp}"))


if __name__ == "__main__":
    main()
