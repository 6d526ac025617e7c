"""The S3 backend against a real S3 HTTP endpoint (moto's server on localhost): every storage
operation, its errors, and the whole job flow with inputs and results kept in a bucket."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from animatica.storage.base import StorageError
from animatica.storage.open import open_storage

BUCKET = "animatica-test"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def _objects(endpoint: str) -> list[str]:
    listing = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=BUCKET)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_storage_operations(s3_endpoint: str, tmp_path: Path) -> None:
    storage = open_storage(f"s3://{BUCKET}/studio?endpoint_url={s3_endpoint}&region=us-east-1")
    storage.check()
    data = bytes(range(256)) * 1000
    (tmp_path / "in.bin").write_bytes(data)
    storage.put_file("jobs/abc/result.mp4", tmp_path / "in.bin")
    assert _objects(s3_endpoint) == ["studio/jobs/abc/result.mp4"]  # under the URL's prefix
    assert storage.size("jobs/abc/result.mp4") == len(data)
    assert b"".join(storage.read_range("jobs/abc/result.mp4", 1000, 300_999)) == data[1000:301_000]
    storage.get_file("jobs/abc/result.mp4", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    storage.delete("jobs/abc/result.mp4")
    assert _objects(s3_endpoint) == []
    with pytest.raises(StorageError, match="missing"):
        storage.size("jobs/abc/result.mp4")
    with pytest.raises(StorageError, match="cannot be read"):
        storage.get_file("jobs/abc/result.mp4", tmp_path / "gone.bin")
    with pytest.raises(ValueError, match="invalid storage key"):  # keys are built by us, never by users
        storage.put_file("../outside", tmp_path / "in.bin")
    with pytest.raises(StorageError, match="cannot be reached"):
        open_storage(f"s3://no-such-bucket?endpoint_url={s3_endpoint}").check()


def test_copy_is_done_by_the_bucket(s3_endpoint: str, tmp_path: Path) -> None:
    from animatica.storage.base import MissingFile

    storage = open_storage(f"s3://{BUCKET}/studio?endpoint_url={s3_endpoint}&region=us-east-1")
    data = bytes(range(256)) * 1000
    (tmp_path / "in.bin").write_bytes(data)
    storage.put_file("jobs/old/source.png", tmp_path / "in.bin")
    storage.copy("jobs/old/source.png", "jobs/new/source.png")
    assert sorted(_objects(s3_endpoint)) == ["studio/jobs/new/source.png", "studio/jobs/old/source.png"]
    storage.delete("jobs/old/source.png")
    storage.get_file("jobs/new/source.png", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    with pytest.raises(MissingFile, match="missing"):
        storage.copy("jobs/old/source.png", "jobs/other/source.png")
    assert _objects(s3_endpoint) == ["studio/jobs/new/source.png"]
    storage.delete("jobs/new/source.png")  # moto keeps buckets across servers in one process
    assert _objects(s3_endpoint) == []


def test_jobs_keep_their_files_in_the_bucket(
    s3_endpoint: str, make_client: Any, api: Any, media: dict[str, Path]
) -> None:
    client = make_client(worker=True, storage_url=f"s3://{BUCKET}?endpoint_url={s3_endpoint}")
    tokens = api.signup_login(client, "alice")
    refused = api.submit(client, tokens, media["video"], media["video"])  # a video posing as the picture
    assert refused.status_code == 415 and _objects(s3_endpoint) == []

    job_id = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    assert api.wait_for(client, tokens, job_id)["status"] == "succeeded"
    assert sorted(_objects(s3_endpoint)) == [
        f"jobs/{job_id}/driving.mp4",
        f"jobs/{job_id}/result.mp4",
        f"jobs/{job_id}/source.png",
    ]
    whole = client.get(f"/api/v1/animations/{job_id}/result", headers=api.bearer(tokens))
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    part = client.get(
        f"/api/v1/animations/{job_id}/result", headers={**api.bearer(tokens), "Range": "bytes=10-99"}
    )
    assert part.status_code == 206 and part.content == whole.content[10:100]
    assert client.delete(f"/api/v1/animations/{job_id}", headers=api.bearer(tokens)).status_code == 204
    assert _objects(s3_endpoint) == []
