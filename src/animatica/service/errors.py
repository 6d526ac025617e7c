"""Errors a request can end with, each carrying its HTTP status.

Every one is an ``AnimaticaError`` with a one-sentence message; the app renders them as
``{"detail": message}``. Errors raised below the service (bad media, no credit) are mapped to a
status in ``status_for``.
"""

from animatica.db.ledger import InsufficientCredits
from animatica.errors import AnimaticaError, MediaError
from animatica.jobs.options import InvalidOptions


class ServiceError(AnimaticaError):
    status_code = 400


class Unauthorized(ServiceError):
    status_code = 401


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class Gone(ServiceError):
    status_code = 410


class TooLarge(ServiceError):
    status_code = 413


class UnsupportedMedia(ServiceError):
    status_code = 415


class Invalid(ServiceError):
    status_code = 422


class Unavailable(ServiceError):
    status_code = 503


class TimedOut(ServiceError):
    status_code = 504


def status_for(error: AnimaticaError) -> int:
    if isinstance(error, ServiceError):
        return error.status_code
    if isinstance(error, InsufficientCredits):
        return 402
    if isinstance(error, (MediaError, InvalidOptions)):
        return 422
    return 400
