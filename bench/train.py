"""`make bench`, training side: time until the project's recipe reaches the plain baseline's validation F1.

The baseline is the plain `Trainer` of transformers' `run_ner.py` with that script's defaults (learning rate
5e-5, 8 sentences per step, 3 epochs, no warmup, no weight decay, fp32, random order): its final validation
F1 is the target. The project's recipe then trains with an evaluation every `eval_steps` optimizer steps and
stops at the first evaluation that reaches the target. Both times count training only: the baseline does
not evaluate while training, and evaluation time is subtracted from the project's clock. Evaluating does not
change the training either: each evaluation's data loader draws a seed from torch's global generator, which
would otherwise shift every later dropout mask, so the run's path would depend on how often it is evaluated.
"""

from __future__ import annotations

import logging
import time

import torch
from transformers import TrainerCallback, set_seed

from nertune.recipe.schema import Recipe

logger = logging.getLogger(__name__)

# What `run_ner.py` trains with when given no hyperparameters (TrainingArguments' defaults).
RUN_NER_DEFAULTS = {
    "learning_rate": 5e-5,
    "per_device_train_batch_size": 8,
    "num_train_epochs": 3.0,
    "warmup_ratio": 0.0,
    "weight_decay": 0.0,
    "global_batch_size": None,
}


def run_ner_recipe(recipe: Recipe) -> Recipe:
    """The recipe with run_ner.py's default hyperparameters (same model, data, seed, max_length, max_steps)."""
    return recipe.model_copy(update=RUN_NER_DEFAULTS)


class F1TimelineCallback(TrainerCallback):
    """Records (step, training seconds without evaluation, validation F1) at every evaluation and stops
    training at the first one whose F1 reaches `target_f1`. Restores torch's random state after each
    evaluation to where the training step left it."""

    def __init__(self, target_f1: float):
        self.target_f1 = target_f1
        self.timeline: list[dict] = []
        self.reached: dict | None = None
        self._started = self._step_ended = 0.0
        self._eval_seconds = 0.0
        self._rng_state: tuple | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = self._step_ended = time.perf_counter()
        self._eval_seconds = 0.0

    def on_step_end(self, args, state, control, **kwargs):
        self._step_ended = time.perf_counter()
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self._rng_state = (torch.get_rng_state(), cuda)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        # The Trainer evaluates right after `on_step_end`: everything since then is evaluation.
        train_seconds = self._step_ended - self._started - self._eval_seconds
        self._eval_seconds += time.perf_counter() - self._step_ended
        if self._rng_state is not None:
            cpu, cuda = self._rng_state
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)
        metrics = metrics or {}
        point = {
            "step": state.global_step,
            "train_seconds": train_seconds,
            "f1": metrics["eval_f1"],
            "loss": metrics.get("eval_loss"),
        }
        self.timeline.append(point)
        logger.info(
            "time to target: step %d, %.1f s training, validation F1 %.4f (target %.4f)",
            point["step"],
            train_seconds,
            point["f1"],
            self.target_f1,
        )
        if self.reached is None and point["f1"] >= self.target_f1:
            self.reached = point
            control.should_training_stop = True


def time_to_target(recipe: Recipe, target_f1: float, eval_steps: int = 20) -> dict:
    """Train `recipe` (its own schedule, unchanged) until its validation F1 first reaches `target_f1`.

    Returns the step and training seconds (evaluation excluded) of that evaluation (None when never reached
    within the recipe's steps) and the whole timeline of evaluations.
    """
    from nertune.training.model_setup import build_model
    from nertune.training.run import build_trainer, setup_run

    recipe = recipe.model_copy(
        update={
            "eval_strategy": "steps",
            "eval_steps": eval_steps,
            "save_strategy": "no",
            "load_best_model_at_end": False,
            "early_stopping_patience": None,
        }
    )
    run = setup_run(recipe)
    set_seed(recipe.seed)
    model = build_model(recipe, run.model_path, run.data)
    trainer = build_trainer(recipe, run.args, run.data, model=model)
    callback = F1TimelineCallback(target_f1)
    trainer.add_callback(callback)
    trainer.train()
    reached = callback.reached
    return {
        "seconds": reached["train_seconds"] if reached else None,
        "step": reached["step"] if reached else None,
        "f1": reached["f1"] if reached else None,
        "timeline": callback.timeline,
    }
