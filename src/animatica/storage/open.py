"""Pick a storage backend from ANIMATICA_STORAGE_URL."""

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from animatica.errors import ConfigError
from animatica.storage.base import Storage
from animatica.storage.local import LocalStorage


def open_storage(url: str) -> Storage:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"ANIMATICA_STORAGE_URL {url!r} names a remote host; use file:///path.")
        return LocalStorage(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"ANIMATICA_STORAGE_URL {url!r} has no bucket; use s3://bucket/prefix.")
        from animatica.storage.s3 import S3Storage

        query = parse_qs(parsed.query)
        return S3Storage.from_parts(
            parsed.netloc,
            parsed.path,
            query.get("endpoint_url", [None])[0],
            query.get("region", [None])[0],
        )
    raise ConfigError(f"ANIMATICA_STORAGE_URL {url!r} is not supported; use file:///path or s3://bucket.")
