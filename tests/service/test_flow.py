"""The whole flow over HTTP: sign up, animate on free credits, run out, buy more with the
local provider, see history, download with Range. Uses the fake executor (job machinery only;
the real pipeline is exercised in test_end_to_end.py)."""

from pathlib import Path
from typing import Any

import av


def test_new_user_animates_buys_and_downloads(
    make_client: Any, api: Any, media: dict[str, Path], tmp_path: Path
) -> None:
    client = make_client(worker=True, free_credits=1)
    tokens = api.signup_login(client, "alice")
    assert api.credits(client, tokens) == 1

    response = api.submit(
        client, tokens, media["image"], media["video"], engine="landmarks", relative="false"
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.headers["location"] == f"/api/v1/animations/{job_id}"
    job = api.wait_for(client, tokens, job_id)
    assert job["status"] == "succeeded", job
    assert job["progress"] == 100.0 and job["options"]["relative"] is False
    assert api.credits(client, tokens) == 0

    # Out of credit: refused up front, nothing queued.
    refused = api.submit(client, tokens, media["image"], media["video"])
    assert refused.status_code == 402
    assert client.get("/api/v1/animations", headers=api.bearer(tokens)).json()["total"] == 1

    # Buy the BASIC pack through the local test-mode provider.
    plans = client.get("/api/v0/subscriptions/limited", headers=api.bearer(tokens)).json()
    basic = next(p for p in plans["data"] if p["id"] == "basic")
    checkout = client.post(
        "/api/v0/payments/checkout-session",
        params={"price_id": basic["default_price"]["id"]},
        headers=api.bearer(tokens),
    ).json()["checkout_session"]
    page = client.get(checkout["url"])
    assert page.status_code == 200 and "TEST MODE" in page.text
    assert client.post(checkout["url"] + "/pay").status_code == 200
    confirmed = client.post(
        "/api/v0/payments",
        json={"session_id": checkout["id"], "product_id": "pro"},
        headers=api.bearer(tokens),
    )
    assert confirmed.json() == {"remaining_queries": 10, "session_id": checkout["id"]}
    # Confirming again (a replayed confirmation) adds nothing.
    again = client.post("/api/v0/payments", json={"session_id": checkout["id"]}, headers=api.bearer(tokens))
    assert again.json()["remaining_queries"] == 10
    assert client.get("/api/v1/me", headers=api.bearer(tokens)).json()["plan"] == "basic"

    second = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    assert api.wait_for(client, tokens, second)["status"] == "succeeded"

    history = client.get("/api/v1/animations", params={"limit": 1}, headers=api.bearer(tokens)).json()
    assert history["total"] == 2 and [item["id"] for item in history["items"]] == [second]
    older = client.get(
        "/api/v1/animations", params={"limit": 1, "offset": 1}, headers=api.bearer(tokens)
    ).json()
    assert [item["id"] for item in older["items"]] == [job_id]

    full = client.get(f"/api/v1/animations/{job_id}/result", headers=api.bearer(tokens))
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    result = tmp_path / "result.mp4"
    result.write_bytes(full.content)
    with av.open(str(result)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6

    part = client.get(
        f"/api/v1/animations/{job_id}/result", headers={**api.bearer(tokens), "Range": "bytes=10-99"}
    )
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-99/{len(full.content)}"
    assert part.content == full.content[10:100]
    tail = client.get(
        f"/api/v1/animations/{job_id}/result", headers={**api.bearer(tokens), "Range": "bytes=-16"}
    )
    assert tail.content == full.content[-16:]
    beyond = client.get(
        f"/api/v1/animations/{job_id}/result",
        headers={**api.bearer(tokens), "Range": f"bytes={len(full.content)}-"},
    )
    assert beyond.status_code == 416


def test_signup_and_login_contract(make_client: Any) -> None:
    client = make_client(worker=False)
    body = {"username": "bob", "password": "long enough"}
    assert client.post("/api/v0/auth/signup", json=body).status_code == 201
    assert client.post("/api/v0/auth/signup", json=body).status_code == 409
    assert (
        client.post("/api/v0/auth/signup", json={"username": "bo", "password": "long enough"}).status_code
        == 422
    )
    assert (
        client.post("/api/v0/auth/signup", json={"username": "carol", "password": "short"}).status_code == 422
    )
    bad = client.post("/api/v0/auth/login", json={"username": "bob", "password": "wrong password"})
    assert bad.status_code == 401 and bad.json()["detail"] == "Invalid credentials"
    nobody = client.post("/api/v0/auth/login", json={"username": "nobody", "password": "long enough"})
    assert nobody.status_code == 401
    tokens = client.post("/api/v0/auth/login", json=body).json()
    assert tokens["token_name"] == "Bearer"
    assert tokens["access_expires_in"] == 900 and tokens["refresh_expires_in"] == 30 * 24 * 3600
