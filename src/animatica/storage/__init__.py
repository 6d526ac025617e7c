"""Where uploaded inputs and results live: a local folder or an S3-compatible bucket."""

from animatica.storage.base import Storage, validate_key
from animatica.storage.local import LocalStorage
from animatica.storage.open import open_storage

__all__ = ["LocalStorage", "Storage", "open_storage", "validate_key"]
