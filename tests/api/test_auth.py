"""Sign-up and log-in: the seed's shapes, validation, and every way a token can be wrong."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from starlette.testclient import TestClient

from tests.api.helpers import PASSWORD, Api
from vidconv.api.security import create_token
from vidconv.settings import Settings


def _signup(client: TestClient, **overrides: object) -> tuple[int, dict[str, object]]:
    body = {"username": "ana", "email": "ana@example.com", "password1": PASSWORD,
            "password2": PASSWORD, **overrides}
    r = client.post("/api/auth/signup", json=body)
    return r.status_code, r.json()


def test_signup_answers_the_seed_shape(client: TestClient) -> None:
    status, body = _signup(client)
    assert status == 201
    assert set(body) == {"message", "id"}
    assert body["message"] == "usuario creado exitosamente"
    assert isinstance(body["id"], str) and body["id"]


@pytest.mark.parametrize("duplicate", [{"email": "other@example.com"}, {"username": "other"}])
def test_signup_with_a_taken_username_or_email_is_409(
    client: TestClient, duplicate: dict[str, str]
) -> None:
    assert _signup(client)[0] == 201
    status, body = _signup(client, **duplicate)
    assert status == 409
    assert body == {"message": "username or email already exists"}


@pytest.mark.parametrize(("overrides", "words"), [
    ({"password2": "something else"}, "do not match"),
    ({"password1": "short", "password2": "short"}, "at least 8"),
    ({"email": "not-an-email"}, "email"),
    ({"username": "has space"}, "username"),
    ({"password1": None}, "password1 is required"),
])
def test_signup_validation_is_422_with_the_reason(
    client: TestClient, overrides: dict[str, object], words: str
) -> None:
    status, body = _signup(client, **overrides)
    assert status == 422
    assert words in str(body["message"])


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_malformed_json_is_400(client: TestClient, body: bytes) -> None:
    for path in ("/api/auth/signup", "/api/auth/login"):
        r = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert "JSON" in r.json()["message"]


def test_login_by_username_or_email_answers_the_seed_shape(client: TestClient) -> None:
    _, created = _signup(client)
    for name in ("ana", "ana@example.com", "ANA@example.com"):
        r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, name
        body = r.json()
        assert set(body) == {"message", "token", "id"}
        assert body["message"] == "Inicio de sesión exitoso"
        assert body["id"] == created["id"]


def test_wrong_password_and_unknown_user_answer_alike(client: TestClient) -> None:
    _signup(client)
    wrong = client.post("/api/auth/login", json={"username": "ana", "password": "nope-nope"})
    unknown = client.post("/api/auth/login", json={"username": "bob", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_password_is_stored_as_argon2id(client: TestClient, settings: Settings) -> None:
    _signup(client)
    from vidconv.db.models import User

    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.sessions() as s:
        user = s.query(User).one()
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _bad_tokens(settings: Settings, user_id: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + 600,
              "iss": settings.jwt_issuer, "aud": settings.jwt_audience}
    return {
        "forged": jwt.encode(claims, "not-the-secret-at-all-not-the-secret", algorithm="HS256"),
        "expired": create_token(settings, user_id, now=now - 2 * settings.token_lifetime_seconds),
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong-audience": jwt.encode({**claims, "aud": "someone-else"}, settings.jwt_secret,
                                     algorithm="HS256"),
        "wrong-issuer": jwt.encode({**claims, "iss": "someone-else"}, settings.jwt_secret,
                                   algorithm="HS256"),
        "no-exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"},
                             settings.jwt_secret, algorithm="HS256"),
        "garbage": "abc.def.ghi",
    }


def test_every_bad_token_is_401_on_every_task_route(api: Api) -> None:
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    user_id = jwt.decode(api.token, options={"verify_signature": False})["sub"]
    headers = {name: {"Authorization": f"Bearer {t}"}
               for name, t in _bad_tokens(ctx.settings, user_id).items()}
    headers["missing"] = {}
    headers["not-bearer"] = {"Authorization": f"Basic {api.token}"}
    calls = [("GET", "/api/tasks"), ("POST", "/api/tasks"), ("GET", "/api/tasks/x"),
             ("DELETE", "/api/tasks/x"), ("GET", "/api/download?task_id=x")]
    for name, h in headers.items():
        for method, path in calls:
            r = api.client.request(method, path, headers=h)
            assert r.status_code == 401, (name, method, path, r.text)
            assert r.json() == {"message": "missing or invalid token"}
    # and the genuine token works
    assert api.client.get("/api/tasks", headers=api.auth).status_code == 200


def test_user_names_are_one_account_whatever_their_width_or_case(client: TestClient) -> None:
    assert _signup(client, username="admin", email="a@example.com")[0] == 201
    for twin, email in (("ａｄｍｉｎ", "b@example.com"), ("Admin", "c@example.com")):
        status, body = _signup(client, username=twin, email=email)
        assert (status, body) == (409, {"message": "username or email already exists"})
    r = client.post("/api/auth/login", json={"username": "ＡＤＭＩＮ", "password": PASSWORD})
    assert r.status_code == 200


def test_repeated_failed_logins_are_throttled_per_account_and_per_address(
    client: TestClient,
) -> None:
    _signup(client)
    for _ in range(5):
        r = client.post("/api/auth/login", json={"username": "ana", "password": "wrong-one"})
        assert r.status_code == 401
    r = client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "account" in r.json()["message"]
    # The same address guessing other accounts is stopped too.
    statuses = [client.post("/api/auth/login", json={"username": f"x{i}", "password": "p"})
                .status_code for i in range(20)]
    assert statuses[-1] == 429 and set(statuses) <= {401, 429}
