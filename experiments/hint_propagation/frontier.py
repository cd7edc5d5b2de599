"""The gain/leak frontier of the engines in results/: one row per setting measured on the 100 selection photos
(two_sided.py --selection 100 --counts 10), with its stroke leak where stroke_leak.py measured it, as a markdown
table and a figure (gain at 10 hints against the dot's leak, and against the stroke's).

    python experiments/hint_propagation/frontier.py --figure experiments/hint_propagation/results/objects_frontier.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
FAMILIES = {"neighbours (shipped family)": "#444444", "neighbours, on a copy of 8192 px": "#9467bd",
            "neighbours + network features": "#1f77b4", "bilateral grid prior": "#2ca02c",
            "grid + network features": "#98df8a", "KNN links": "#d62728"}


def family(setting: str) -> str:
    if "gridfeat" in setting:
        return "grid + network features"
    if "grid_xy" in setting:
        return "bilateral grid prior"
    if "knn" in setting:
        return "KNN links"
    if "feat" in setting:
        return "neighbours + network features"
    if "max_pixels" in setting:
        return "neighbours, on a copy of 8192 px"
    return "neighbours (shipped family)"


def collect() -> dict:
    rows: dict = {}
    for path in sorted(RESULTS.glob("objects_*.json")):
        if "screen" in path.name or "eval" in path.name:
            continue
        for key, run in json.loads(path.read_text()).items():
            if not key.endswith("/selection") or run["photos"] != 100:
                continue
            for setting, scores in run.items():
                if isinstance(scores, dict) and "gain_10" in scores:
                    rows[setting] = {"gain": scores["gain_10"], "leak": scores["leak"], "file": path.name}
    for path in sorted(RESULTS.glob("strokes_*.json")):
        for setting, scores in json.loads(path.read_text())["settings"].items():
            if setting in rows:
                rows[setting].update(stroke=scores["stroke_leak"], coffee=scores["coffee_leak"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure")
    args = parser.parse_args()
    rows = collect()
    print("| engine | setting | gain at 10 hints | dot leak | stroke leak | coffee stroke leak |")
    print("|---|---|---:|---:|---:|---:|")
    for setting, r in sorted(rows.items(), key=lambda kv: (family(kv[0]), kv[1]["leak"])):
        stroke = f"{100 * r['stroke']:.1f} %" if "stroke" in r else ""
        coffee = f"{100 * r['coffee']:.1f} %" if "coffee" in r else ""
        print(f"| {family(setting)} | `{setting}` | {r['gain']:+.2f} | {100 * r['leak']:.1f} % | {stroke} | {coffee} |")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        for name, colour in FAMILIES.items():
            mine = [r for s, r in rows.items() if family(s) == name]
            axes[0].scatter([100 * r["leak"] for r in mine], [r["gain"] for r in mine], color=colour, label=name)
            stroked = [r for r in mine if "stroke" in r]
            axes[1].scatter([100 * r["stroke"] for r in stroked], [r["gain"] for r in stroked], color=colour)
        for ax, title in zip(axes, ("one dot (hints.leak_probe)", "one stroke (stroke_leak.py, 41 photos)")):
            ax.axhline(3.5, color="k", ls=":", lw=1)
            ax.axvline(10, color="k", ls=":", lw=1)
            ax.set_xlabel(f"leak, % of other colours moved > 5 ab: {title}")
            ax.set_xlim(0, 30)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("gain in PSNR at 10 hints, dB")
        axes[0].legend(fontsize=8, loc="lower right")
        fig.suptitle("Hint engines on 100 selection photos (cnn, render 128); dotted: the issue's target")
        fig.tight_layout()
        fig.savefig(args.figure, dpi=110)


if __name__ == "__main__":
    main()
