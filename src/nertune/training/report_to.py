"""The recipe's `report_to`: the logging integrations the Trainer sets up, and TensorBoard under the run dir."""

from __future__ import annotations

import importlib.util
import logging

logger = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"  # TensorBoard event files, under the run dir


def _report_to(setting: str) -> list[str] | str:
    if setting == "auto":
        if importlib.util.find_spec("tensorboard"):
            return ["tensorboard"]
        logger.info(
            "report_to=auto: tensorboard is not installed, so training logs go to trainer_state.json "
            "and learning_curves.png only"
        )
        return "none"
    return "none" if setting == "none" else [s.strip() for s in setting.split(",")]


def _without_tensorboard(report_to: list[str] | str) -> tuple[list[str] | str, bool]:
    """(the integrations the Trainer sets up itself, whether to add TensorBoard): the Trainer's own
    TensorBoard callback would log under checkpoints/runs/<date>; `build_trainer` adds one for the run dir."""
    if isinstance(report_to, str):
        return report_to, False
    others = [name for name in report_to if name != "tensorboard"]
    return (others or "none"), len(others) < len(report_to)
