"""Rate limits on login, sign-up, refresh and submit (per client address and per account, API and
pages alike, shared through Redis between app processes) and the bound on password hashes at once.

Requests come from distinct client addresses by giving each test client its own peer address,
which is what the limits key on (uvicorn puts the proxy-reported address there when it trusts
the proxy).
"""

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from animatica.service import auth
from animatica.settings import Settings

PASSWORD = "correct horse battery"
WAIT = 120.0  # generous: only a broken build waits this long
UNLIMITED = "100000/minute"
REDIS_URL = "redis://127.0.0.1:6379/15"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "storage_url": (tmp_path / "files").as_uri(),
        "secret_key": "rate-limit-test-secret-key-long-enough-for-hs256",
        "worker_enabled": False,
        "log_level": "WARNING",
        "public_base_url": "http://testserver",
        "payment_provider": "local",
        "upload_check_processes": 0,
        "rate_limit_login": UNLIMITED,
        "rate_limit_login_account": UNLIMITED,
        "rate_limit_signup": UNLIMITED,
        "rate_limit_refresh": UNLIMITED,
        "rate_limit_submit": UNLIMITED,
        "rate_limit_submit_account": UNLIMITED,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[Callable[..., Callable[[str], TestClient]]]:
    """`clients(**settings)` builds one app and returns `at(address)`: a client of it from there."""
    from animatica.service.app import create_app

    opened: list[TestClient] = []

    def build(**overrides: Any) -> Callable[[str], TestClient]:
        app = create_app(_settings(tmp_path, **overrides))
        by_address: dict[str, TestClient] = {}

        def at(address: str) -> TestClient:
            if address not in by_address:
                client = TestClient(app, follow_redirects=False, client=(address, 40000))
                if not opened or opened[-1].app is not app:
                    client.__enter__()  # one client per app runs its start-up and shut-down
                    opened.append(client)
                by_address[address] = client
            return by_address[address]

        return at

    yield build
    for client in reversed(opened):
        client.__exit__(None, None, None)
    auth.bound_password_hashing(4, 8)


def _signup(client: TestClient, username: str) -> Any:
    return client.post("/api/v0/auth/signup", json={"username": username, "password": PASSWORD})


def _login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v0/auth/login", json={"username": username, "password": password})


def _csrf(client: TestClient) -> str:
    if not client.cookies.get("animatica_csrf"):
        client.get("/signin")
    return str(client.cookies.get("animatica_csrf"))


def _page_signin(client: TestClient, username: str) -> Any:
    return client.post(
        "/signin", data={"username": username, "password": PASSWORD, "csrf_token": _csrf(client)}
    )


def _page_signup(client: TestClient, username: str) -> Any:
    form = {"username": username, "password": PASSWORD, "confirm": PASSWORD, "terms": "accepted"}
    return client.post("/signup", data={**form, "csrf_token": _csrf(client)})


def _refused(response: Any, limit_seconds: int) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= limit_seconds


def test_logins_are_limited_per_client_address_on_the_api_and_the_sign_in_page(clients: Any) -> None:
    at = clients(rate_limit_login="3/minute")
    assert _signup(at("198.51.100.1"), "alice").status_code == 201
    attacker = at("198.51.100.66")
    assert [_login(attacker, "alice", f"guess-{n}-xx").status_code for n in range(3)] == [401] * 3
    refused = _login(attacker, "alice", PASSWORD)  # even the right password: the budget is spent
    _refused(refused, 60)
    assert "Too many login attempts from your address" in refused.json()["detail"]
    page = _page_signin(attacker, "alice")  # the form counts with the API
    _refused(page, 60)
    assert "text/html" in page.headers["content-type"] and "Too many login attempts" in page.text
    # Someone else, elsewhere, is not affected.
    assert _login(at("198.51.100.2"), "alice").status_code == 200
    assert _page_signin(at("198.51.100.3"), "alice").status_code == 303


def test_logins_are_limited_per_username_whatever_the_address(clients: Any) -> None:
    at = clients(rate_limit_login_account="3/minute")
    home = at("198.51.100.1")
    for name in ("alice", "bob"):
        assert _signup(home, name).status_code == 201
    # Guesses at one password spread over many addresses still add up.
    assert _login(at("203.0.113.1"), "alice", "wrong-password-1").status_code == 401
    assert _page_signin(at("203.0.113.2"), "alice").status_code == 303
    assert _login(at("203.0.113.3"), "alice", "wrong-password-3").status_code == 401
    refused = _login(at("203.0.113.4"), "alice")
    _refused(refused, 60)
    assert "for this account" in refused.json()["detail"]
    page = _page_signin(at("203.0.113.5"), "alice")
    _refused(page, 60)
    assert "Too many login attempts for this account" in page.text
    assert _login(home, "bob").status_code == 200  # another account is not affected


def test_signups_are_limited_per_client_address_and_a_refused_one_creates_nothing(
    clients: Any, db: Any
) -> None:
    from sqlalchemy import func, select

    from animatica.db.models import User

    at = clients(rate_limit_signup="3/hour")
    farm = at("192.0.2.10")
    assert _signup(farm, "farm1").status_code == 201
    assert _page_signup(farm, "farm2").status_code == 303
    assert _signup(farm, "farm3").status_code == 201
    refused = _signup(farm, "farm4")
    _refused(refused, 3600)
    assert "Too many sign-ups from your address" in refused.json()["detail"]
    _refused(_page_signup(farm, "farm5"), 3600)
    assert _signup(at("192.0.2.11"), "neighbour").status_code == 201
    with db.read() as session:
        names = set(session.scalars(select(User.username)))
        assert session.scalar(select(func.count()).select_from(User)) == 4
    assert names == {"farm1", "farm2", "farm3", "neighbour"}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    from animatica.db import Database

    database = Database(_settings(tmp_path).database_url)
    yield database
    database.dispose()


def test_refreshes_are_limited_per_client_address(clients: Any) -> None:
    at = clients(rate_limit_refresh="2/minute")
    client = at("198.51.100.7")
    assert _signup(client, "alice").status_code == 201
    token = _login(client, "alice").json()["refresh_token"]
    for _ in range(2):
        response = client.post("/api/v0/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 200
        token = response.json()["refresh_token"]
    _refused(client.post("/api/v0/auth/refresh", json={"refresh_token": token}), 60)
    # The refused request never reached the token service: the token is still good elsewhere.
    assert at("198.51.100.8").post("/api/v0/auth/refresh", json={"refresh_token": token}).status_code == 200


def _post_job(
    client: TestClient, token: str, media: dict[str, Path], path: str = "/api/v1/animations"
) -> Any:
    with media["image"].open("rb") as image, media["video"].open("rb") as video:
        return client.post(
            path,
            headers={"Authorization": f"Bearer {token}"},
            files={
                "source_image": ("s.png", image, "image/png"),
                "driving_video": ("d.mp4", video, "video/mp4"),
            },
        )


def _page_job(client: TestClient, media: dict[str, Path]) -> Any:
    with media["image"].open("rb") as image, media["video"].open("rb") as video:
        return client.post(
            "/create",
            headers={"Accept": "application/json"},
            data={"csrf_token": _csrf(client)},
            files={
                "source_image": ("s.png", image, "image/png"),
                "driving_video": ("d.mp4", video, "video/mp4"),
            },
        )


def _balance(client: TestClient, token: str) -> int:
    response = client.get("/api/v0/subscriptions/current", headers={"Authorization": f"Bearer {token}"})
    return int(response.json()["subscription"]["remaining_queries"])


def test_submissions_are_limited_per_client_address_before_any_credit_or_file(
    clients: Any, media: dict[str, Path], tmp_path: Path
) -> None:
    at = clients(rate_limit_submit="2/minute", free_credits=5)
    office = at("198.51.100.20")
    assert _signup(office, "alice").status_code == 201
    token = _login(office, "alice").json()["access_token"]
    assert [_post_job(office, token, media).status_code for _ in range(2)] == [202, 202]
    refused = _post_job(office, token, media)
    _refused(refused, 60)
    assert "Too many animations submitted from your address" in refused.json()["detail"]
    _refused(_post_job(office, token, media, "/api/v0/animation/video"), 60)  # one budget for all
    assert _balance(office, token) == 3  # only the two accepted jobs hold a credit
    stored = sorted(p.parent.name for p in (tmp_path / "files").rglob("source.png"))
    assert len(stored) == 2
    assert _post_job(at("198.51.100.21"), token, media).status_code == 202


def test_submissions_are_limited_per_account_on_the_api_and_the_create_page(
    clients: Any, media: dict[str, Path]
) -> None:
    at = clients(rate_limit_submit_account="2/minute", free_credits=5)
    browser = at("198.51.100.30")
    assert _page_signup(browser, "alice").status_code == 303  # the browser is signed in
    token = _login(at("198.51.100.31"), "alice").json()["access_token"]
    assert _post_job(at("198.51.100.31"), token, media).status_code == 202
    assert _page_job(browser, media).status_code == 202
    refused = _page_job(browser, media)
    _refused(refused, 60)
    assert "submitting animations too quickly" in refused.json()["detail"]
    _refused(_post_job(at("198.51.100.32"), token, media), 60)  # any address, same account
    assert _balance(browser, token) == 3
    # Another account on the same address is not affected.
    assert _signup(browser, "bob").status_code == 201
    bob = _login(browser, "bob").json()["access_token"]
    assert _post_job(browser, bob, media).status_code == 202


def test_default_limits_are_on_and_well_formed() -> None:
    from limits import parse_many

    fields = Settings.model_fields
    for name in (
        "rate_limit_login",
        "rate_limit_login_account",
        "rate_limit_signup",
        "rate_limit_refresh",
        "rate_limit_submit",
        "rate_limit_submit_account",
    ):
        default = fields[name].default
        assert default and all(item.amount >= 1 for item in parse_many(default)), name
    with pytest.raises(ValueError, match="not a rate"):
        Settings(rate_limit_login="ten a minute")


def test_the_limited_paths_are_the_posts_that_guess_create_or_queue() -> None:
    from animatica.service.ratelimit import LOGIN, REFRESH, SIGNUP, SUBMIT, address_rule

    assert [address_rule(p) for p in ("/api/v0/auth/login", "/signin")] == [LOGIN, LOGIN]
    assert [address_rule(p) for p in ("/api/v0/auth/signup", "/signup")] == [SIGNUP, SIGNUP]
    assert address_rule("/api/v0/auth/refresh") == REFRESH
    submits = ("/api/v1/animations", "/api/v0/animation/video", "/create", "/jobs/0123abcd/rerun")
    assert {address_rule(p) for p in submits} == {SUBMIT}
    for free in ("/api/v0/auth/logout", "/jobs/0123abcd/cancel", "/api/v1/animations/0123abcd/cancel"):
        assert address_rule(free) is None


# --- shared counts in Redis -----------------------------------------------------------------


def _redis_reason() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} does not answer ({type(exc).__name__})"
    return None


def test_two_app_processes_share_counts_through_redis(clients: Any, tmp_path: Path) -> None:
    reason = _redis_reason()
    if reason:
        pytest.skip(reason)
    # Two apps over one database and one Redis, as two server processes behind a load balancer.
    first = clients(redis_url=REDIS_URL, rate_limit_login="3/minute")
    second = clients(redis_url=REDIS_URL, rate_limit_login="3/minute")
    address = f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"  # fresh counts in a shared Redis
    assert _signup(first("198.51.100.1"), "alice").status_code == 201
    assert _login(first(address), "alice").status_code == 200
    assert _login(second(address), "alice").status_code == 200
    assert _login(first(address), "alice").status_code == 200
    _refused(_login(second(address), "alice"), 60)  # the second process saw the first's attempts
    _refused(_login(first(address), "alice"), 60)


def test_a_redis_broker_is_used_for_the_counts_unless_redis_is_named() -> None:
    from animatica.service.ratelimit import shared_store_url

    assert shared_store_url(Settings()) == ""
    assert shared_store_url(Settings(broker_url="amqp://guest@localhost//")) == ""
    assert shared_store_url(Settings(broker_url="redis://broker:6379/0")) == "redis://broker:6379/0"
    named = Settings(broker_url="redis://broker:6379/0", redis_url="redis://limits:6379/2")
    assert shared_store_url(named) == "redis://limits:6379/2"


def test_an_unreachable_redis_lets_requests_through(tmp_path: Path) -> None:
    from animatica.service.ratelimit import LOGIN, RateLimits

    # Nothing listens on port 1: the counts cannot be kept, and logins must not all fail.
    limits = RateLimits(_settings(tmp_path, redis_url="redis://127.0.0.1:1/0", rate_limit_login="1/minute"))
    assert limits.shared
    for _ in range(3):
        limits.hit(LOGIN, "198.51.100.9")


# --- the bound on password hashes -----------------------------------------------------------


class _CountingHasher:
    """The real argon2 hasher, with a count of computations in progress and a gate to hold them."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.inside = 0
        self.most = 0
        self.gate = threading.Event()
        self._lock = threading.Lock()

    def _run(self, work: Callable[[], Any]) -> Any:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            assert self.gate.wait(WAIT), "the test never opened the gate"
            return work()
        finally:
            with self._lock:
                self.inside -= 1

    def hash(self, password: str) -> str:
        return str(self._run(lambda: self.real.hash(password)))

    def verify(self, password_hash: str, password: str) -> bool:
        return bool(self._run(lambda: self.real.verify(password_hash, password)))

    def check_needs_rehash(self, password_hash: str) -> bool:
        return bool(self.real.check_needs_rehash(password_hash))


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[_CountingHasher]:
    counting = _CountingHasher(auth._hasher)
    monkeypatch.setattr(auth, "_hasher", counting)
    yield counting
    counting.gate.set()
    auth.bound_password_hashing(4, 8)


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    event = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def test_no_more_password_hashes_run_at_once_than_the_bound(hasher: _CountingHasher) -> None:
    auth.bound_password_hashing(2, 10)
    stored = auth._hasher.real.hash(PASSWORD)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(auth.verify_password(stored, PASSWORD)), daemon=True)
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    # All eight have asked; two compute, six wait their turn.
    _wait_until(lambda: auth.HASH_SLOTS.waiting == 6 and hasher.inside == 2, "two run and six wait")
    assert hasher.most == 2
    hasher.gate.set()
    for thread in threads:
        thread.join(WAIT)
    assert results == [True] * 8 and hasher.most == 2


def test_a_full_hashing_queue_answers_503_with_retry_after(clients: Any, hasher: _CountingHasher) -> None:
    at = clients(password_hash_concurrency=1, password_hash_queue=0)
    hasher.gate.set()
    assert _signup(at("198.51.100.1"), "alice").status_code == 201
    hasher.gate.clear()
    waiting: list[int] = []
    holder = threading.Thread(
        target=lambda: waiting.append(_login(at("198.51.100.2"), "alice").status_code), daemon=True
    )
    holder.start()
    _wait_until(lambda: hasher.inside == 1, "one login hashes")
    for response in (
        _login(at("198.51.100.3"), "alice"),
        _signup(at("198.51.100.4"), "bob"),
    ):
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == str(auth.HASH_RETRY_SECONDS)
        assert "busy checking other passwords" in response.json()["detail"]
    page = _page_signin(at("198.51.100.5"), "alice")
    assert page.status_code == 503 and "busy checking other passwords" in page.text
    assert page.headers["Retry-After"] == str(auth.HASH_RETRY_SECONDS)
    hasher.gate.set()
    holder.join(WAIT)
    assert waiting == [200]
    assert _login(at("198.51.100.3"), "alice").status_code == 200  # nothing was left held


def test_a_login_holds_no_write_lock_while_its_password_is_checked(
    clients: Any, hasher: _CountingHasher, db: Any
) -> None:
    from sqlalchemy import update

    from animatica.db.models import User

    at = clients()
    hasher.gate.set()
    assert _signup(at("198.51.100.1"), "alice").status_code == 201
    hasher.gate.clear()
    done: list[int] = []
    login = threading.Thread(
        target=lambda: done.append(_login(at("198.51.100.2"), "alice").status_code), daemon=True
    )
    login.start()
    _wait_until(lambda: hasher.inside == 1, "the login checks the password")
    # On SQLite a write transaction takes the database's write lock; another writer would wait
    # for the whole check (and fail after the busy timeout if it outlasted it).
    with db.transaction() as session:
        session.execute(update(User).where(User.username == "alice").values(plan_id="free"))
    assert login.is_alive() and not done
    hasher.gate.set()
    login.join(WAIT)
    assert done == [200]
