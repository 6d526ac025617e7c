"""Errors a user or operator can cause when asking for a picture."""

from animatica.errors import AnimaticaError


class ImageModelMissing(AnimaticaError):
    """An operation needs weights the operator has not configured; the message names the setting and the
    file or folder to put there."""


class PromptRefused(AnimaticaError):
    """The content filter refused the prompt or the picture; the message says which rule matched."""


class ImageRequestError(AnimaticaError):
    """A request whose options cannot be honoured: bad size, steps, weights or input pictures."""
