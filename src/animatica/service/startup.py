"""Settings the service refuses to start with, and what it says about them when it starts.

A weak signing key lets anyone forge sessions, a wildcard CORS origin with credentials lets any
web site act for a signed-in user: such settings stop the server with one line that says what
to change, rather than running unsafely and leaving it to be noticed later.
"""

import ipaddress
import logging
import re

from animatica.errors import AnimaticaError
from animatica.service.payments import MODE_LABELS, local_only
from animatica.settings import Settings

log = logging.getLogger("animatica.service")

MIN_SECRET_BYTES = 32
# Compared with the key lower-cased and stripped of everything but letters and digits.
PLACEHOLDERS = ("changeme", "replaceme", "placeholder", "yoursecret", "secretkeyhere")
KEY_ADVICE = (
    "set at least 32 random bytes (python -c 'import secrets; print(secrets.token_urlsafe(48))'), "
    "or unset it to have one generated and kept under ANIMATICA_HOME"
)


class UnsafeSettings(AnimaticaError):
    """A setting the service will not run with; the message names it and the fix."""


def check_settings(settings: Settings) -> None:
    """Raise UnsafeSettings for the first setting that makes the server unsafe to run."""
    _check_secret(settings.secret_key)
    for origin in settings.cors_origins:
        if origin.strip() in ("*", "null"):
            raise UnsafeSettings(
                f"ANIMATICA_CORS_ORIGINS holds {origin.strip()!r}: with credentials allowed, any web "
                "site could call the API as a signed-in visitor; list the exact origins instead."
            )
    if settings.payment_provider == "stripe" and not settings.stripe_secret_key:
        raise UnsafeSettings(
            "ANIMATICA_PAYMENT_PROVIDER is stripe but ANIMATICA_STRIPE_SECRET_KEY is empty; set it, "
            "or choose 'none'."
        )
    if settings.metrics_bind:
        parse_bind(settings.metrics_bind)


def _check_secret(key: str) -> None:
    if not key:
        return  # generated on first use, random and kept with mode 0600
    letters = re.sub(r"[^a-z0-9]", "", key.lower())
    if any(marker in letters for marker in PLACEHOLDERS):
        raise UnsafeSettings(f"ANIMATICA_SECRET_KEY still holds a placeholder; {KEY_ADVICE}.")
    size = len(key.encode())
    if size < MIN_SECRET_BYTES:
        raise UnsafeSettings(
            f"ANIMATICA_SECRET_KEY is {size} bytes, shorter than {MIN_SECRET_BYTES}; {KEY_ADVICE}."
        )
    if len(set(key)) < 8:  # 32 random characters practically never repeat so few
        raise UnsafeSettings(
            f"ANIMATICA_SECRET_KEY repeats a few characters, so it is not random; {KEY_ADVICE}."
        )


def parse_bind(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) of the separate metrics listener."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    valid = bool(sep and host and port.isdigit() and 0 < int(port) < 65536)
    if valid and host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            valid = False
    if not valid:
        raise UnsafeSettings(
            f"ANIMATICA_METRICS_BIND must be address:port, such as 127.0.0.1:9464, not {value!r}."
        )
    return host, int(port)


def log_payment_mode(settings: Settings, provider: str, bind_host: str | None) -> None:
    """One line that says how credits are sold here, louder when it costs the operator money."""
    line = f"payments: {MODE_LABELS.get(provider, provider)}"
    if provider == "local" and not local_only(settings, bind_host):
        log.warning(
            f"{line}: anyone who signs up can add credits for free; set ANIMATICA_PAYMENT_PROVIDER "
            "to stripe or none on a server others can reach"
        )
    elif provider == "stripe" and not settings.stripe_webhook_secret:
        log.warning(
            f"{line}: ANIMATICA_STRIPE_WEBHOOK_SECRET is empty, so payments are credited only when "
            "buyers come back to the pricing page, and refunds and disputes are not seen"
        )
    else:
        log.info(line)
