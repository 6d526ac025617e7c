"""Any S3-compatible store (AWS, MinIO, Ceph...) through boto3.

URL form: ``s3://bucket/optional/prefix?endpoint_url=http://minio:9000&region=eu-west-1``;
credentials come from boto3's usual chain (environment, config files, instance roles).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from animatica.storage.base import MissingFile, StorageError, validate_key


class S3Storage:
    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client

    @classmethod
    def from_parts(
        cls, bucket: str, prefix: str, endpoint_url: str | None, region: str | None
    ) -> "S3Storage":
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None)
        return cls(bucket, prefix, client)

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, source: Path) -> None:
        self.client.upload_file(str(source), self.bucket, self._key(key))

    def get_file(self, key: str, destination: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._key(key), str(destination))
        except Exception as exc:
            raise StorageError(f"The stored file {key} cannot be read: {exc}.") from exc

    def copy(self, src_key: str, dst_key: str) -> None:
        source = {"Bucket": self.bucket, "Key": self._key(src_key)}
        try:  # CopyObject: the bucket copies the object itself (up to 5 GB, far above any upload)
            self.client.copy_object(Bucket=self.bucket, Key=self._key(dst_key), CopySource=source)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise MissingFile(f"The stored file {src_key} is missing.") from exc
            raise StorageError(f"The stored file {src_key} cannot be copied: {exc}.") from exc

    def size(self, key: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise StorageError(f"The stored file {key} is missing.") from exc
        return int(head["ContentLength"])

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        response = self.client.get_object(
            Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end}"
        )
        body = response["Body"]
        return iter(lambda: body.read(256 * 1024), b"")

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise StorageError(f"The S3 bucket {self.bucket} cannot be reached: {exc}.") from exc
