"""Another user's job is not found (404) on every job route, never forbidden (403)."""

from pathlib import Path
from typing import Any


def test_other_users_jobs_are_invisible(make_client: Any, api: Any, media: dict[str, Path], db: Any) -> None:
    client = make_client(worker=True)
    alice = api.signup_login(client, "alice")
    mallory = api.signup_login(client, "mallory")
    job_id = api.submit(client, alice, media["image"], media["video"]).json()["id"]
    assert api.wait_for(client, alice, job_id)["status"] == "succeeded"

    as_mallory = api.bearer(mallory)
    for method, path in (
        ("get", f"/api/v1/animations/{job_id}"),
        ("get", f"/api/v1/animations/{job_id}/result"),
        ("post", f"/api/v1/animations/{job_id}/cancel"),
        ("delete", f"/api/v1/animations/{job_id}"),
        ("get", "/api/v1/animations/does-not-exist"),
    ):
        response = getattr(client, method)(path, headers=as_mallory)
        assert response.status_code == 404, (method, path, response.status_code)
    assert client.get("/api/v1/animations", headers=as_mallory).json()["total"] == 0

    # Checkouts are bound to their buyer too.
    checkout = client.post(
        "/api/v0/payments/checkout-session", params={"price_id": "basic"}, headers=api.bearer(alice)
    ).json()["checkout_session"]
    peek = client.get(
        "/api/v0/payments/checkout-session", params={"session_id": checkout["id"]}, headers=as_mallory
    )
    assert peek.status_code == 404
    client.post(checkout["url"] + "/pay")
    steal = client.post("/api/v0/payments", json={"session_id": checkout["id"]}, headers=as_mallory)
    assert steal.status_code == 404
    assert api.credits(client, mallory) == 3
    # Alice still sees and can delete her own job.
    assert client.delete(f"/api/v1/animations/{job_id}", headers=api.bearer(alice)).status_code == 204
    assert client.get(f"/api/v1/animations/{job_id}", headers=api.bearer(alice)).status_code == 404
