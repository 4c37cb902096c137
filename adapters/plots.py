"""Plots of adaptation runs: fitness vs generation with the switch windows shaded, and the
population-mean mutation rate (the paper's "self-regulated variation" curve)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def switch_windows(switch_on: list[bool]) -> list[tuple[int, int]]:
    """[(start, end)] generation windows where the switch was on (end exclusive)."""
    windows, start = [], None
    for g, on in enumerate(switch_on):
        if on and start is None:
            start = g
        if not on and start is not None:
            windows.append((start, g))
            start = None
    if start is not None:
        windows.append((start, len(switch_on)))
    return windows


def _shade(ax, windows) -> None:
    for i, (a, b) in enumerate(windows):
        ax.axvspan(a, b, color="tab:red", alpha=0.08, label="switch on" if i == 0 else None)


def plot_adaptation(records: list[dict], path: str | Path, title: str | None = None) -> Path:
    """Median (and IQR band) of best fitness and of rate_mean per method, over seeds."""
    by_method: dict[str, list[dict]] = {}
    for r in records:
        by_method.setdefault(r["method"] + (f" {r['label']}" if r.get("label") else ""), []).append(r)
    fig, (ax_f, ax_r) = plt.subplots(2, 1, figsize=(9, 7), sharex=True, height_ratios=(2, 1))
    windows = switch_windows([g["switch_on"] for g in records[0]["generations"]])
    _shade(ax_f, windows)
    _shade(ax_r, windows)
    colors = plt.get_cmap("tab10" if len(by_method) <= 10 else "tab20").colors
    for i, (name, runs) in enumerate(sorted(by_method.items())):
        n = min(len(r["generations"]) for r in runs)
        best = np.array([[g["best"] for g in r["generations"][:n]] for r in runs])
        x = np.arange(n)
        line, = ax_f.plot(x, np.median(best, axis=0), label=f"{name} (n={len(runs)})", lw=1.2,
                          color=colors[i % len(colors)])
        if len(runs) > 1:
            ax_f.fill_between(x, *np.percentile(best, [25, 75], axis=0), color=line.get_color(), alpha=0.15)
        rates = [[g["rate_mean"] for g in r["generations"][:n]] for r in runs]
        if all(v is not None for row in rates for v in row):
            ax_r.plot(x, np.median(np.array(rates, dtype=float), axis=0), color=line.get_color(), lw=1.2, label=name)
    ax_f.set_ylabel("best fitness (median, IQR)")
    ax_f.legend(fontsize=7, loc="lower left")
    ax_r.set_ylabel("population-mean rate")
    ax_r.set_xlabel("generation")
    if title:
        ax_f.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
