"""Training: a launcher (:mod:`~hvrnn.training.launcher`: processes, run directory, data), an
engine (:mod:`~hvrnn.training.engine`: one step and the loop), the run's state
(:mod:`~hvrnn.training.state`), its hooks (:mod:`~hvrnn.training.hooks`: logs, validation,
images, checkpoints) and what they use (batches, logs, schedules, validation)."""

from hvrnn.training.batches import BatchPlan, iterate_batches
from hvrnn.training.engine import StepResult, TrainingDiverged, fit, train_step
from hvrnn.training.launcher import TrainResult, format_result, train
from hvrnn.training.logs import MetricsLog, read_metrics
from hvrnn.training.schedules import REFERENCE_BATCH, learning_rate
from hvrnn.training.state import TrainState, build_initial_model, seed_all
from hvrnn.training.validation import validate

__all__ = ["REFERENCE_BATCH", "BatchPlan", "MetricsLog", "StepResult", "TrainResult",
           "TrainState", "TrainingDiverged", "build_initial_model", "fit", "format_result",
           "iterate_batches", "learning_rate", "read_metrics", "seed_all", "train",
           "train_step", "validate"]
