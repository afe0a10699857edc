"""The pictures: what the lecture notes draw, from a trained model's numbers. Each function
writes one PNG (matplotlib, the Agg backend: no screen needed) and returns its path.

- :func:`attention_heatmap`: a decoder's attention weights, a row per output symbol and a
  column per source symbol (Bahdanau et al. 2015, fig. 3).
- :func:`score_by_length`: a score (BLEU) against the source's length, one line per model
  (Bahdanau et al. 2015, fig. 2: attention holds up on long sentences).
- :func:`forecast_plot`: a series' history, its forecast and the prediction interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def attention_heatmap(weights: np.ndarray, source: Sequence[str], output: Sequence[str], path: Path,
                      title: str | None = None) -> Path:
    """weights (T, S): row t the weights over the S source symbols when output symbol t was
    written (T = len(output), the end symbol included if it is listed)."""
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(output), len(source)):
        raise ValueError(f"weights are {weights.shape}; {len(output)} outputs x {len(source)} source symbols expected")
    plt = _pyplot()
    width, height = 1.5 + 0.35 * len(source), 1.2 + 0.3 * len(output)
    fig, ax = plt.subplots(figsize=(min(width, 30), min(height, 30)))
    ax.imshow(weights, cmap="gray_r", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), list(source), rotation=90)
    ax.set_yticks(range(len(output)), list(output))
    ax.xaxis.tick_top()
    if title:
        ax.set_title(title, pad=40 if len(source) else 6)
    return _save(fig, path)


def score_by_length(curves: dict[str, Sequence[tuple[float, float]]], path: Path, xlabel: str = "source length",
                    ylabel: str = "BLEU") -> Path:
    """One line per name: its (length, score) points, in order of length."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        xs, ys = zip(*points) if points else ((), ())
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def forecast_plot(dates: Sequence[str], history: Sequence[float], future: Sequence[str], mean: Sequence[float],
                  lower: Sequence[float], upper: Sequence[float], path: Path, title: str = "",
                  level: float = 0.8) -> Path:
    """The history (its last dates), the forecast and its interval, against the dates."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    n = len(history)
    ax.plot(range(n), history, color="black", linewidth=1, label="history")
    xs = range(n, n + len(mean))
    ax.plot(xs, mean, color="tab:blue", label="forecast")
    ax.fill_between(xs, lower, upper, color="tab:blue", alpha=0.25, label=f"{level:.0%} interval")
    labels = [*dates, *future]
    ticks = list(range(0, len(labels), max(1, len(labels) // 8)))
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=30)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path
