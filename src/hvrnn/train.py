"""``hvrnn.train``: the names of :mod:`hvrnn.training` under the module path they had before
training became a package (``from hvrnn.train import train, read_metrics`` keeps working)."""

from hvrnn.training import (
    REFERENCE_BATCH,
    BatchPlan,
    MetricsLog,
    StepResult,
    TrainingDiverged,
    TrainResult,
    TrainState,
    build_initial_model,
    fit,
    format_result,
    iterate_batches,
    learning_rate,
    read_metrics,
    seed_all,
    train,
    train_step,
    validate,
)

__all__ = ["REFERENCE_BATCH", "BatchPlan", "MetricsLog", "StepResult", "TrainResult",
           "TrainState", "TrainingDiverged", "build_initial_model", "fit", "format_result",
           "iterate_batches", "learning_rate", "read_metrics", "seed_all", "train",
           "train_step", "validate"]
