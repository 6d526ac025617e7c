"""What a user reads when a job fails: the cause in their words, never the server's paths.

Errors raised while animating may name files: the job's temporary folder, the configured FOMM
checkpoint, ``ANIMATICA_HOME``. Those paths say nothing useful to the user and tell an attacker
how the server is laid out. Every message stored on a job passes through ``public_text``, and the
workers turn exceptions into messages with ``user_error``, so both worker kinds (the in-process
runner and the Celery tasks) speak alike.
"""

import errno
import re
from collections.abc import Mapping

from animatica.errors import AnimaticaError

INTERNAL_ERROR = "The animation failed because of an internal error; your credit was returned."
CANCELED = "Canceled by the user."

# How every message here says the credit came back; `credit_words` takes it out for free jobs.
_CREDIT_RETURNED = re.compile(r"(?:;|,| and) your credit was returned")

# A file:// URI, or an absolute path: a slash (or ~/) that does not continue a word, a number, a
# relative path or a URL, up to the next blank, quote or bracket.
_URI = re.compile(r"file://[^\s'\"`<>()\[\]{},;]+")
_PATH = re.compile(r"(?<![\w./:~-])~?/[^\s'\"`<>()\[\]{},;]+")
_TRAILING = ".:"  # sentence punctuation that ends a path in running text, not part of its name


def time_limit_message(seconds: float) -> str:
    return (
        f"The animation took longer than its limit of {seconds:.0f} s and was stopped; "
        "your credit was returned."
    )


def stall_message(seconds: float) -> str:
    return f"The animation made no progress for {seconds:.0f} s and was stopped; your credit was returned."


def memory_message(megabytes: int | None = None) -> str:
    allowed = f" ({megabytes} MB)" if megabytes else ""
    return (
        f"The animation needed more memory than this server allows a job{allowed} and was stopped; "
        "your credit was returned. A smaller source picture or driving video needs less."
    )


def credit_words(message: str, credit_reserved: bool) -> str:
    """``message`` as it applies to a job that did (or did not) reserve a credit.

    Failure messages promise the credit back; a job of cost 0 (a live recording, paid for in live
    minutes) reserved none, so for it the promise is taken out rather than made falsely.
    """
    return message if credit_reserved else _CREDIT_RETURNED.sub("", message)


def is_out_of_memory(error: BaseException) -> bool:
    """Allocation failures as Python, NumPy, PyAV and the OS report them, and as torch does."""
    if isinstance(error, MemoryError):
        return True
    if isinstance(error, OSError) and error.errno == errno.ENOMEM:
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def _name(path: str) -> str:
    """The last part of a path: enough for the user to recognise a file, nothing of where it lives."""
    parts = [part for part in path.split("/") if part and part != "~"]
    return parts[-1] if parts else "a file"


def _strip(match: re.Match[str], prefix: str = "") -> str:
    text = match.group(0)
    tail = text[len(text.rstrip(_TRAILING)) :]
    return _name(text[len(prefix) : len(text) - len(tail)]) + tail


def public_text(message: str, labels: Mapping[str, str] | None = None) -> str:
    """``message`` with each path in ``labels`` replaced by its label, and any other absolute path by
    its file name."""
    for path, label in sorted((labels or {}).items(), key=lambda item: -len(item[0])):
        if path:
            message = message.replace(path, label)
    message = _URI.sub(lambda match: _strip(match, "file://"), message)
    return _PATH.sub(_strip, message)


def user_error(
    error: BaseException, labels: Mapping[str, str] | None = None, memory_mb: int | None = None
) -> str:
    """The message a failed job shows for ``error``.

    Problems with the user's input (``AnimaticaError``) keep their explanation, minus paths; running
    out of memory says so; anything else is a bug whose details belong in the log, not on the job.
    """
    if is_out_of_memory(error):
        return memory_message(memory_mb)
    if isinstance(error, AnimaticaError):
        return public_text(str(error), labels) or INTERNAL_ERROR
    return INTERNAL_ERROR
