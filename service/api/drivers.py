"""Driver authentication: ``Authorization: Bearer <JWT>``, HS256 with ``CHARGELINE_JWT_SECRET``.

Claims: ``sub`` is the driver id; ``exp`` (and ``nbf``) are honoured when present; an optional
``edrv_user`` carries the driver's eDRV user id, which the app's backend vouches for. Only HS256 is
accepted, so ``alg: none`` and algorithm-confusion tokens are refused.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
import msgspec
from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig

from service.api.problems import problem
from service.settings import Settings

DRIVER_SECURITY: list[dict[str, list[str]]] = [{"driverToken": []}]
ALGORITHM = "HS256"
DEV_SECRET_FILE = "jwt-secret"


class Driver(msgspec.Struct, frozen=True):
    id: str
    edrv_user_id: str | None


def token_secret(settings: Settings) -> str:
    """The configured key, or in development a random one created once and kept in the data directory
    (so ``chargeline token`` and the server on the same machine agree, and nobody else can guess it)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = Path(settings.data_dir) / DEV_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32))
        try:
            os.link(draft, path)  # atomic: of two processes starting at once, one key wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def mint_token(secret: str, driver_id: str, *, edrv_user_id: str | None = None, ttl_s: int = 86_400) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": driver_id, "iat": now, "exp": now + ttl_s}
    if edrv_user_id:
        claims["edrv_user"] = edrv_user_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def driver_from_token(token: str, secret: str) -> Driver:
    """Raises ``jwt.InvalidTokenError`` (bad signature, wrong algorithm, expired, no subject, ...)."""
    claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub"]})
    subject, edrv_user = claims.get("sub"), claims.get("edrv_user")
    if not isinstance(subject, str) or not subject or len(subject) > 200:
        raise jwt.InvalidTokenError("`sub` must be a driver id (a non-empty string)")
    if edrv_user is not None and (not isinstance(edrv_user, str) or len(edrv_user) > 200):
        raise jwt.InvalidTokenError("`edrv_user` must be a string")
    return Driver(subject, edrv_user or None)


async def current_driver(request: Request[Any, Any, Any]) -> Driver:
    """The dependency every driver endpoint takes: the verified driver, or a 401 problem."""
    verified = _verified(request)
    if isinstance(verified, str):
        raise _unauthorized(verified)
    return verified


_VERIFIED = "chargeline_driver"


def _verified(request: Request[Any, Any, Any]) -> Driver | str:
    """The driver the bearer token proves, or why it proves nothing; verified once per request (the rate
    limiter asks first, the endpoint's dependency then gets the same answer)."""
    known: Driver | str | None = request.state.get(_VERIFIED)
    if known is None:
        known = request.state[_VERIFIED] = _verify(request)
    return known


def _verify(request: Request[Any, Any, Any]) -> Driver | str:
    scheme, _sep, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "a driver's bearer token is required"
    secret: str = request.app.state.jwt_secret
    try:
        return driver_from_token(token.strip(), secret)
    except jwt.InvalidTokenError as exc:
        return f"the token is not valid: {exc}"


def _unauthorized(detail: str) -> Exception:
    exc = problem(401, "Unauthorized", detail)
    exc.headers = {"WWW-Authenticate": 'Bearer realm="chargeline-drivers"'}
    return exc


def _rate_limit_key(request: Request[Any, Any, Any]) -> str:
    """Per verified driver, so that a driver holding several tokens gets no more than one budget; requests
    without a valid token share their client address's (fresh garbage tokens buy nothing)."""
    verified = _verified(request)
    if isinstance(verified, Driver):
        return "driver:" + hashlib.sha256(verified.id.encode()).hexdigest()
    return "address:" + (request.client.host if request.client else "unknown")


def driver_rate_limit(settings: Settings) -> RateLimitConfig:
    return RateLimitConfig(
        rate_limit=("minute", settings.driver_rate_limit),
        identifier_for_request=_rate_limit_key,
        store="driver_rate_limit",
    )
