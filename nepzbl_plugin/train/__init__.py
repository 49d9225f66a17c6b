"""Training NEP(-ZBL) models on GPUMD's objective: the loss and its adjoints, q_scaler,
initialisation, Adam/L-BFGS/SNES, the trainer (:func:`train`), checkpoints, parity plots and
the labels-minus-ZBL residual."""

from .loss import Labels, Loss, LossValue, LossWeights, Predictions
from .snes import SNES, snes_eta_sigma, snes_utilities
from .trainer import TrainingDiverged, TrainingHistory, TrainingSettings, predict, train

__all__ = [
    "train",
    "predict",
    "TrainingHistory",
    "TrainingSettings",
    "TrainingDiverged",
    "Loss",
    "LossWeights",
    "LossValue",
    "Labels",
    "Predictions",
    "SNES",
    "snes_utilities",
    "snes_eta_sigma",
]
