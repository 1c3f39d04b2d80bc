"""The PNG plots of `nertune evaluate`: the row-normalised entity confusion matrix, the learning curves and the
reliability diagram of the scores (`calibration.reliability_bins`).

matplotlib is optional: without it every plot is skipped with a warning and returns None.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["best_checkpoint", "plot_confusion_matrix", "plot_learning_curves", "plot_reliability", "row_normalised"]

logger = logging.getLogger(__name__)


def _pyplot():
    """matplotlib.pyplot on the headless Agg backend, or None (logged) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed: skipping the plots (pip install 'nertune[report]')")
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def row_normalised(matrix: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts, share of each row, row totals) of `error_analysis(...)["confusion_matrix"]`; an empty row is 0s."""
    counts = np.array(matrix["counts"], dtype=float).reshape(len(matrix["gold_labels"]), len(matrix["pred_labels"]))
    totals = counts.sum(axis=1)
    return counts, counts / np.maximum(totals, 1)[:, None], totals


def plot_confusion_matrix(
    matrix: dict, out_png: str | Path, title: str = "entity types: gold vs predicted"
) -> Path | None:
    """Draw `error_analysis(...)["confusion_matrix"]` row-normalised (each gold type's entities add up to 100%,
    so rare types read as clearly as frequent ones), with each cell's count; None if matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return None
    counts, shares, totals = row_normalised(matrix)
    n_rows, n_cols = counts.shape
    fig, ax = plt.subplots(figsize=(2.4 + 1.0 * n_cols, 1.4 + 0.6 * n_rows), dpi=100)
    try:
        from matplotlib.colors import PowerNorm

        # A square-root scale: a 5% error still shows against the 0% cells beside it.
        image = ax.imshow(shares, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=1), aspect="auto")
        ax.set_xticks(range(n_cols), matrix["pred_labels"], rotation=30, ha="right")
        ax.set_yticks(range(n_rows), [f"{label} ({int(n)})" for label, n in zip(matrix["gold_labels"], totals)])
        ax.set_xlabel("predicted type (or error)")
        ax.set_ylabel("gold type (entities)")
        ax.set_title(title, fontsize=10)
        for r in range(n_rows):
            for c in range(n_cols):
                if counts[r, c]:
                    ax.text(
                        c,
                        r,
                        f"{shares[r, c]:.0%}\n{int(counts[r, c])}",
                        ha="center",
                        va="center",
                        color="white" if shares[r, c] > 0.5 else "black",
                        fontsize=8,
                    )
        # The error columns (boundary, missed) apart from the type columns.
        ax.axvline(n_cols - 2.5, color="grey", linewidth=1)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the gold type's entities")
        fig.tight_layout()
        fig.savefig(out_png, format="png")
    finally:
        plt.close(fig)
    return Path(out_png)


def best_checkpoint(state: dict[str, Any]) -> tuple[int, float] | None:
    """(step, F1) of the best evaluation: trainer_state's `best_global_step` (or the step of
    `best_model_checkpoint`) when it was evaluated, else the evaluation with the highest F1; None without one."""
    evals = {h["step"]: h["eval_f1"] for h in state.get("log_history", []) if "eval_f1" in h and "step" in h}
    if not evals:
        return None
    step = state.get("best_global_step")
    if step is None and state.get("best_model_checkpoint"):
        found = re.search(r"checkpoint-(\d+)$", str(state["best_model_checkpoint"]).rstrip("/"))
        step = int(found.group(1)) if found else None
    if step not in evals:
        step = max(evals, key=lambda s: (evals[s], -s))  # the first of equally good ones, as the Trainer keeps it
    return step, evals[step]


def _epochs(history: list[dict]) -> dict[int, float]:
    """step -> epoch from the log; steps the log has no epoch for are interpolated between those it has."""
    known = sorted({h["step"]: h["epoch"] for h in history if "epoch" in h and "step" in h}.items())
    steps = sorted({h["step"] for h in history if "step" in h})
    if not known:
        return {}
    xs, ys = zip(*known)
    return {s: float(np.interp(s, xs, ys)) for s in steps}


def plot_learning_curves(trainer_state_path: str | Path, out_png: str | Path) -> Path | None:
    """Training and validation loss (left) and validation entity F1 (right) per epoch from a Trainer's
    `trainer_state.json`, the F1 axis zoomed to the data and the best checkpoint marked on both.

    Returns the PNG path, or None (logged) when the file is missing, has nothing to plot, or matplotlib
    is not installed. Without epochs in the log, the x axis is in steps.
    """
    path = Path(trainer_state_path)
    if not path.is_file():
        logger.info("no %s: skipping the learning curves", path)
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    history = state.get("log_history", [])
    epochs = _epochs(history)
    unit = "epoch" if epochs else "step"

    def x(step: int) -> float:
        return epochs.get(step, step) if epochs else step

    def series(key: str) -> list[tuple[float, float]]:
        return [(x(h["step"]), h[key]) for h in history if key in h and "step" in h]

    train, eval_f1, eval_loss = series("loss"), series("eval_f1"), series("eval_loss")
    if not (train or eval_f1 or eval_loss):
        logger.info("%s has no logged loss or F1: skipping the learning curves", path)
        return None
    plt = _pyplot()
    if plt is None:
        return None
    best = best_checkpoint(state)
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    try:
        if train:
            ax_loss.plot(*zip(*train), marker="o", markersize=2, linewidth=1.2, label="training loss")
        if eval_loss:
            ax_loss.plot(*zip(*eval_loss), marker="s", markersize=4, label="validation loss")
        ax_loss.set_title("loss")
        ax_loss.set_ylabel("loss")
        if eval_f1:
            xs, ys = zip(*eval_f1)
            ax_f1.plot(xs, ys, marker="o", markersize=4, color="tab:green", label="validation entity F1")
            # Zoomed to the data: F1 between 0.90 and 0.92 is a flat line on a 0-1 axis.
            low, high = min(ys), max(ys)
            margin = max((high - low) * 0.15, 0.005)
            ax_f1.set_ylim(max(0.0, low - margin), min(1.0 + margin / 2, high + margin))
            ax_f1.set_title("validation entity F1")
        else:
            ax_f1.text(0.5, 0.5, "no validation F1 logged\n(eval_strategy=no)", ha="center", va="center",
                       transform=ax_f1.transAxes)  # fmt: skip
            ax_f1.set_title("validation entity F1")
        ax_f1.set_ylabel("entity F1")
        if best is not None:
            step, f1 = best
            for ax in (ax_loss, ax_f1):
                ax.axvline(x(step), color="tab:red", linestyle="--", linewidth=1, alpha=0.7)
            ax_f1.plot([x(step)], [f1], marker="*", markersize=16, color="tab:red", linestyle="none",
                       label=f"best: F1 {f1:.4f} at {unit} {x(step):g} (step {step})")  # fmt: skip
        for ax in (ax_loss, ax_f1):
            ax.set_xlabel(unit)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        fig.savefig(out_png, format="png")
    finally:
        plt.close(fig)
    return Path(out_png)


def plot_reliability(bins: Sequence[dict[str, float]], out_png: str | Path, title: str = "reliability") -> Path | None:
    """The reliability diagram (accuracy per confidence bin against the diagonal) as a PNG; None without
    matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    width = bins[0]["high"] - bins[0]["low"] if bins else 0.1
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    try:
        ax.bar(centres, [b["accuracy"] for b in bins], width=width * 0.9, label="accuracy", color="#4c72b0")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        ax.set_xlabel("confidence (word score)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(out_png, dpi=100)
    finally:
        plt.close(fig)
    return Path(out_png)
