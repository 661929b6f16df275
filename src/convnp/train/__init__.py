"""Training: the loop, its callbacks, its settings, and whole runs with a run folder."""

from convnp.train.callbacks import Callback, Checkpoint, EarlyStopping, MetricsCSV, ProgressBar
from convnp.train.config import TrainConfig
from convnp.train.loop import Trainer, TrainingDiverged, TrainingInterrupted, evaluate, fit

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "MetricsCSV",
    "ProgressBar",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "evaluate",
    "fit",
]
