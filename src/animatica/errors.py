"""User-facing errors.

Anything a user can cause (a bad file, a wrong option, missing weights) is raised as an
``AnimaticaError`` with a message that says what is wrong and what to do. The CLI prints that
message as one line and exits non-zero; the service stores it on the failed job. Any other
exception is a bug in Animatica and keeps its traceback.
"""


class AnimaticaError(Exception):
    """A problem with the user's input or environment, explained in one sentence."""


class MediaError(AnimaticaError):
    """An input image or video that cannot be used, or an output that cannot be written."""


class CheckpointError(AnimaticaError):
    """A checkpoint file that is missing, corrupt or does not fit the configuration."""


class ConfigError(AnimaticaError):
    """A model configuration that cannot be read or is not valid."""
