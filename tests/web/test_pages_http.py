"""The pages over plain HTTP, without a browser: cookie flags, CSRF, sessions versus Bearer
tokens, user isolation, the no-script form posts, re-run, checkout messages, thumbnails.

The worker is off, so submitted jobs stay queued; these tests are about the pages, not animation.
"""

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from animatica.settings import Settings

PASSWORD = "correct horse battery"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "secret_key": "http-test-secret-key-long-enough-for-hs256-signing",
        "worker_enabled": False,
        "log_level": "WARNING",
        "public_base_url": "http://testserver",
        "payment_provider": "local",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    from animatica.service.app import create_app

    with TestClient(create_app(_settings(tmp_path)), follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    from animatica.demo import write_demo_driving

    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(buffer, format="PNG")
    video = write_demo_driving(tmp_path / "drive.mp4", seconds=0.4, fps=10, size=64)
    return {"image": buffer.getvalue(), "video": video.read_bytes()}


def csrf(client: TestClient) -> str:
    if not client.cookies.get("animatica_csrf"):
        client.get("/signin")
    return str(client.cookies.get("animatica_csrf"))


def sign_up(client: TestClient, username: str) -> None:
    response = client.post(
        "/signup",
        data={
            "username": username,
            "password": PASSWORD,
            "confirm": PASSWORD,
            "terms": "accepted",
            "csrf_token": csrf(client),
        },
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/create"


def upload(client: TestClient, files: dict[str, bytes], json: bool = False, **form: str) -> Any:
    headers = {"Accept": "application/json"} if json else {}
    return client.post(
        "/create",
        headers=headers,
        data={"csrf_token": csrf(client), **form},
        files={
            "source_image": ("me.png", files["image"], "image/png"),
            "driving_video": ("talk.mp4", files["video"], "video/mp4"),
        },
    )


def balance(client: TestClient) -> int:
    page = client.get("/create").text
    found = re.search(r'data-credits="(\d+)"', page)
    assert found, "no credit balance in the header"
    return int(found.group(1))


def test_session_and_csrf_cookies_are_httponly_lax_and_secure_on_https(tmp_path: Path) -> None:
    from animatica.service.app import create_app

    app = create_app(_settings(tmp_path))
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        with TestClient(app, base_url=base, follow_redirects=False) as browser:
            sign_up(browser, f"user_{int(secure)}")
            cookies = [c for c in browser.cookies.jar if c.name in ("animatica_session", "animatica_csrf")]
            assert {c.name for c in cookies} == {"animatica_session", "animatica_csrf"}
            for cookie in cookies:
                assert cookie.has_nonstandard_attr("HttpOnly")
                assert cookie.get_nonstandard_attr("SameSite", "").lower() == "lax"
                assert cookie.secure is secure


def test_forms_without_the_csrf_token_or_from_another_site_are_refused(client: TestClient) -> None:
    token = csrf(client)
    form = {"username": "mallory", "password": PASSWORD, "confirm": PASSWORD, "terms": "accepted"}
    missing = client.post("/signup", data=form)
    assert missing.status_code == 403 and "expired" in missing.text
    wrong = client.post("/signup", data={**form, "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    foreign = client.post(
        "/signup", data={**form, "csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "another site" in foreign.text
    assert client.post("/signin", data={"username": "mallory", "password": PASSWORD}).status_code == 403

    sign_up(client, "alice")
    # Signing in replaced the token, so one planted before it no longer works.
    assert client.cookies.get("animatica_csrf") != token
    assert client.post("/signout", data={"csrf_token": token}).status_code == 403
    assert client.get("/create").status_code == 200


def test_page_sessions_and_api_tokens_do_not_mix(client: TestClient) -> None:
    sign_up(client, "alice")
    assert client.get("/api/v1/me").status_code == 401  # the cookie is not an API credential
    tokens = client.post("/api/v0/auth/login", json={"username": "alice", "password": PASSWORD}).json()
    session = client.cookies.get("animatica_session")
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/api/v1/me", headers=bearer).status_code == 200
    # A Bearer token does not open the pages, nor does an API token placed in the cookie.
    assert client.get("/create", headers=bearer).headers["location"] == "/signin?next=/create"
    client.cookies.set("animatica_session", tokens["access_token"])
    assert client.get("/create").status_code == 303
    client.cookies.set("animatica_session", str(session))
    assert client.get("/create").status_code == 200


def test_sign_out_ends_the_session_even_for_a_copied_cookie(client: TestClient) -> None:
    sign_up(client, "alice")
    copied = str(client.cookies.get("animatica_session"))
    response = client.post("/signout", data={"csrf_token": csrf(client)})
    assert response.status_code == 303 and response.headers["location"] == "/signin"
    client.cookies.set("animatica_session", copied)
    assert client.get("/history").headers["location"] == "/signin?next=/history"
    assert client.get("/jobs/abc/status", headers={"Accept": "application/json"}).status_code == 401


def test_sign_in_redirects_only_within_the_site(client: TestClient) -> None:
    sign_up(client, "alice")
    client.post("/signout", data={"csrf_token": csrf(client)})
    for target, expected in (("/history?page=2", "/history?page=2"), ("//evil.example", "/create")):
        response = client.post(
            "/signin",
            data={"username": "alice", "password": PASSWORD, "next": target, "csrf_token": csrf(client)},
        )
        assert response.headers["location"] == expected
        client.post("/signout", data={"csrf_token": csrf(client)})
    bad = client.post(
        "/signin", data={"username": "alice", "password": "wrong password", "csrf_token": csrf(client)}
    )
    assert bad.status_code == 401 and "Invalid credentials" in bad.text


def test_pages_show_security_headers_and_the_balance(client: TestClient) -> None:
    sign_up(client, "alice")
    page = client.get("/create")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert balance(client) == 3
    assert 'class="user-label">alice<' in page.text
    css = client.get(re.search(r'href="(/static/app\.css\?v=\w+)"', page.text).group(1))  # type: ignore[union-attr]
    assert css.status_code == 200 and "prefers-color-scheme: dark" in css.text


def test_create_without_script_then_cancel_delete_and_rerun(
    client: TestClient, files: dict[str, bytes]
) -> None:
    sign_up(client, "alice")
    response = upload(client, files, motion="absolute", crop_face="true")
    assert response.status_code == 303
    job_url = response.headers["location"]
    job_id = job_url.rsplit("/", 1)[1]
    assert balance(client) == 2
    page = client.get(job_url).text
    assert "Waiting in the queue" in page and "absolute motion" in page
    status = client.get(f"{job_url}/status").json()
    assert status["status"] == "queued" and status["stage_label"] == "Waiting in the queue"
    assert status["options"]["relative"] is False and status["options"]["crop_face"] is True

    thumb = client.get(f"{job_url}/thumbnail")
    assert thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.size == (320, 240)

    canceled = client.post(f"{job_url}/cancel", data={"csrf_token": csrf(client)})
    assert canceled.headers["location"] == job_url
    assert "canceled" in client.get(job_url).text.lower()
    assert balance(client) == 3

    rerun = client.post(f"{job_url}/rerun", data={"csrf_token": csrf(client)})
    new_url = rerun.headers["location"]
    assert new_url != job_url and new_url.startswith("/jobs/")
    again = client.get(f"{new_url}/status").json()
    assert again["options"] == status["options"] and again["source_name"] == "me.png"
    assert balance(client) == 2

    deleted = client.post(f"{job_url}/delete", data={"csrf_token": csrf(client)})
    assert deleted.headers["location"] == "/history"
    history = client.get("/history").text
    assert "were deleted" in history and job_id not in history and new_url.rsplit("/", 1)[1] in history


def test_rerun_after_retention_deleted_the_inputs(client: TestClient, files: dict[str, bytes]) -> None:
    from sqlalchemy import update

    from animatica.db.models import Job

    sign_up(client, "alice")
    job_url = upload(client, files).headers["location"]
    client.post(f"{job_url}/cancel", data={"csrf_token": csrf(client)})
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.transaction() as session:
        session.execute(update(Job).values(source_key=None, driving_key=None))
    response = client.post(f"{job_url}/rerun", data={"csrf_token": csrf(client)})
    assert response.status_code == 410 and "upload them again" in response.text
    assert client.get(f"{job_url}/thumbnail").status_code == 404


def test_upload_errors_come_back_on_the_page_or_as_json(client: TestClient, files: dict[str, bytes]) -> None:
    sign_up(client, "alice")
    swapped = {"image": files["video"], "video": files["image"]}
    page = upload(client, swapped)
    assert page.status_code == 415
    assert 'id="create-error"' in page.text and "The source image (me.png) is not a JPG" in page.text
    as_json = upload(client, swapped, json=True)
    assert as_json.status_code == 415 and "source image" in as_json.json()["detail"]
    missing = client.post(
        "/create", data={"csrf_token": csrf(client)}, headers={"Accept": "application/json"}
    )
    assert missing.status_code == 422 and "Choose a source picture" in missing.json()["detail"]
    bad_engine = upload(client, files, json=True, engine="magic")
    assert bad_engine.status_code == 422 and "Unknown engine" in bad_engine.json()["detail"]
    assert balance(client) == 3
    ok = upload(client, files, json=True)
    assert ok.status_code == 202 and ok.json()["url"].startswith("/jobs/") and ok.json()["credits"] == 2


def test_another_users_job_does_not_exist(tmp_path: Path, files: dict[str, bytes]) -> None:
    from animatica.service.app import create_app

    app = create_app(_settings(tmp_path))
    with (
        TestClient(app, follow_redirects=False) as alice,
        TestClient(app, follow_redirects=False) as bob,
    ):
        sign_up(alice, "alice")
        sign_up(bob, "bob")
        job_url = upload(alice, files).headers["location"]
        assert bob.get(job_url).status_code == 404
        assert "no such animation" in bob.get(job_url).text
        for suffix in ("/status", "/result", "/thumbnail"):
            assert bob.get(job_url + suffix).status_code == 404, suffix
        for action in ("cancel", "delete", "rerun"):
            assert bob.post(f"{job_url}/{action}", data={"csrf_token": csrf(bob)}).status_code == 404
        assert alice.get(f"{job_url}/status").json()["status"] == "queued"
        assert job_url.rsplit("/", 1)[1] not in bob.get("/history").text


def test_anonymous_visitors_are_sent_to_sign_in(client: TestClient) -> None:
    assert client.get("/").headers["location"] == "/signin"
    assert client.get("/history?page=2").headers["location"] == "/signin?next=/history%3Fpage%3D2"
    assert client.get("/jobs/x/status", headers={"Accept": "application/json"}).status_code == 401
    for path in ("/pricing", "/about", "/terms", "/signin", "/signup"):
        assert client.get(path).status_code == 200, path
    assert "Sign in to buy credits" in client.get("/pricing").text


def test_history_pagination(client: TestClient, files: dict[str, bytes]) -> None:
    sign_up(client, "alice")
    ids = [upload(client, files).headers["location"].rsplit("/", 1)[1] for _ in range(3)]
    first = client.get("/history?per=2").text
    assert "Page 1 of 2" in first and ids[2] in first and ids[1] in first and ids[0] not in first
    second = client.get("/history?page=2&per=2").text
    assert ids[0] in second and ids[2] not in second and 'rel="prev"' in second
    assert client.get("/history?page=9&per=2").headers["location"] == "/history?page=2&per=2"


def test_checkout_messages(client: TestClient) -> None:
    sign_up(client, "alice")
    assert client.post("/pricing/checkout", data={"csrf_token": csrf(client)}).status_code == 400
    opened = client.post("/pricing/checkout", data={"plan": "basic", "csrf_token": csrf(client)})
    checkout_path = opened.headers["location"]
    assert checkout_path.startswith("/api/v1/payments/local/cs_local_")
    waiting = client.get("/pricing").text
    assert 'id="pending-checkout"' in waiting and f'href="{checkout_path}"' in waiting
    assert client.post(f"{checkout_path}/pay").status_code == 200
    paid = client.get("/pricing")
    assert "Payment was successful! 10 credits were added" in paid.text
    assert 'id="pricing-balance">13<' in paid.text
    assert "payment-notice" not in client.get("/pricing").text  # said once, then forgotten
    assert "Payment canceled" in client.get("/pricing?canceled=true").text
    assert balance(client) == 13


def test_stripe_return_confirms_with_the_provider_not_the_client(client: TestClient) -> None:
    """Back from Stripe's success address, the page asks the provider whether it is paid."""
    from animatica.service.payments import ProviderCheckout, ProviderStatus

    class Provider:
        name = "stripe"
        paid = False

        def create_checkout(self, plan: Any, user_id: int, reference: str) -> ProviderCheckout:
            return ProviderCheckout(f"cs_test_{reference}", "https://checkout.stripe.com/c/pay/cs_test")

        def status(self, checkout_id: str) -> ProviderStatus:
            return ProviderStatus(self.paid, 1999 if self.paid else None, "usd" if self.paid else None)

    provider = Provider()
    client.app.state.ctx.payments = provider  # type: ignore[attr-defined]
    sign_up(client, "alice")
    opened = client.post("/pricing/checkout", data={"plan": "pro", "csrf_token": csrf(client)})
    assert opened.headers["location"] == "https://checkout.stripe.com/c/pay/cs_test"
    checkout_id = str(client.cookies.get("animatica_checkout"))
    waiting = client.get(f"/pricing?success=true&session_id={checkout_id}").text
    assert "being confirmed" in waiting and balance(client) == 3
    provider.paid = True
    paid = client.get(f"/pricing?success=true&session_id={checkout_id}").text
    assert "50 credits were added" in paid and balance(client) == 53
    client.get(f"/pricing?success=true&session_id={checkout_id}")
    assert balance(client) == 53  # reloading the return address credits nothing more


def test_pages_name_a_swap_by_the_video_it_changed() -> None:
    """History and the job page describe a swap as one, not as an animation "with" its video."""
    from types import SimpleNamespace

    from animatica.service.pages.views import job_label

    job = SimpleNamespace(kind="face_swap", driving_name="actor.mp4", frames=4, fps=25.0)
    assert job_label(job) == "face swapped into actor.mp4"  # type: ignore[arg-type]
    assert job_label(SimpleNamespace(kind="animation", driving_name="actor.mp4")) is None  # type: ignore[arg-type]
