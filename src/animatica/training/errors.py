"""Errors a user can cause while preparing data, training or evaluating."""

from animatica.errors import AnimaticaError


class DatasetError(AnimaticaError):
    """A dataset folder that cannot be used: missing, empty, or with unreadable videos."""


class TrainingError(AnimaticaError):
    """Training cannot start or continue: bad options, a checkpoint that does not fit, divergence."""
