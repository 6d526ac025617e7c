"""The Create page's engine list follows the server's FOMM weights; the test-mode checkout page
leads back to Animatica (paid) or away (canceled), as Stripe's addresses do. Plain HTTP."""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.web.test_pages_http import _settings, balance, csrf, sign_up, upload


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    from animatica.service.app import create_app

    opened: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(create_app(_settings(tmp_path, **overrides)), follow_redirects=False)
        client.__enter__()
        opened.append(client)
        return client

    yield build
    for client in opened:
        client.__exit__(None, None, None)


def _option(page: str, engine: str) -> str:
    found = re.search(rf'<option value="{engine}"[^>]*>[^<]*</option>', page)
    assert found, f"no {engine} option"
    return found.group(0)


def test_fomm_is_offered_only_when_weights_resolve(
    make_client: Callable[..., TestClient], tiny_fomm_checkpoint: Path
) -> None:
    lacking = make_client(fomm_checkpoint="no-such-weights-for-this-test")
    sign_up(lacking, "alice")
    page = lacking.get("/create").text
    assert " disabled" in _option(page, "fomm") and "(not available)" in _option(page, "fomm")
    assert "selected" in _option(page, "landmarks")
    assert 'id="engine-fomm-note"' in page and "no FOMM model weights" in page

    having = make_client(fomm_checkpoint=str(tiny_fomm_checkpoint), engine="fomm")
    sign_up(having, "bob")
    page = having.get("/create").text
    assert "disabled" not in _option(page, "fomm") and "selected" in _option(page, "fomm")
    assert 'id="engine-fomm-note"' not in page


def test_create_form_refuses_fomm_without_weights_and_keeps_the_credit(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    from PIL import Image

    from animatica.demo import write_demo_driving

    client = make_client(fomm_checkpoint="")
    sign_up(client, "alice")
    Image.new("RGB", (128, 96), (200, 120, 40)).save(tmp_path / "face.png")
    files = {
        "image": (tmp_path / "face.png").read_bytes(),
        "video": write_demo_driving(tmp_path / "drive.mp4", seconds=0.4, fps=10, size=64).read_bytes(),
    }
    refused = upload(client, files, json=True, engine="fomm")
    assert refused.status_code == 422 and "turned off" in refused.json()["detail"]
    page = upload(client, files, engine="fomm")
    assert page.status_code == 422 and "turned off" in page.text
    assert balance(client) == 3


def test_test_mode_checkout_links_back_paid_or_canceled(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    sign_up(client, "alice")
    path = client.post("/pricing/checkout", data={"plan": "basic", "csrf_token": csrf(client)}).headers[
        "location"
    ]
    checkout_id = path.rsplit("/", 1)[1]
    unpaid = client.get(path).text
    assert "TEST MODE" in unpaid and 'href="/pricing?canceled=true">Cancel</a>' in unpaid
    assert "Back to Animatica" not in unpaid
    assert "Payment canceled" in client.get("/pricing?canceled=true").text
    assert balance(client) == 3

    paid = client.post(f"{path}/pay").text
    assert "TEST MODE" in paid and "Paid: the credits were added." in paid
    back = re.search(r'<a id="back" href="([^"]+)">Back to Animatica</a>', paid)
    assert back and back.group(1) == f"/pricing?success=true&amp;session_id={checkout_id}"
    landing = client.get(back.group(1).replace("&amp;", "&")).text
    assert "Payment was successful! 10 credits were added" in landing
    assert balance(client) == 13
    again = client.get(path).text
    assert "already paid" in again and "Back to Animatica" in again and "Cancel</a>" not in again
