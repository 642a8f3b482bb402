"""Request dependencies: the context, bearer-token auth and role checks that stack."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from collector.api.context import ApiContext
from collector.tickets.core import MAX_ID as MAX_ID  # ids: INTEGER columns
from ledwatch.errors import ConfigError


class Role(StrEnum):
    VIEWER = "viewer"
    ENGINEER = "engineer"
    ADMIN = "admin"


RANK: Final = {Role.VIEWER: 0, Role.ENGINEER: 1, Role.ADMIN: 2}

# What SQL takes: ids are INTEGER columns (int32 on PostgreSQL: MAX_ID), LIMIT/OFFSET are
# BIGINT on PostgreSQL and int64 on SQLite. A bigger number gets a 422 naming the bound, not
# a driver overflow turned into a 500.
MAX_INT64: Final = 2**63 - 1
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_INT64, description="rows to skip")]

_bearer = HTTPBearer(auto_error=False, description="a token from the collector config")


def check_tokens(tokens: dict[str, str], key: str = "api.tokens") -> dict[str, Role]:
    """Validate the token table once at start; never echo a token in the message."""
    checked: dict[str, Role] = {}
    for n, (token, role) in enumerate(tokens.items()):
        if len(token) < 8:
            raise ConfigError(f"{key}[{n}]: token too short (at least 8 characters)")
        try:
            checked[token] = Role(role)
        except ValueError:
            raise ConfigError(
                f"{key}[{n}]: role {role!r} is unknown (viewer, engineer or admin)"
            ) from None
    return checked


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[ApiContext, Depends(get_ctx)]


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    token_id: str  # a short hash: names the token in history without revealing it

    def actor(self, name: str | None = None) -> str:
        """Who is written into ticket history: the given name, else role and token id."""
        return f"{name} ({self.role.value})" if name else f"{self.role.value}:{self.token_id}"


def current_principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if creds is None or not creds.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send 'Authorization: Bearer <token>'",
            headers=unauthorized,
        )
    given = creds.credentials.encode()
    tokens: dict[str, Role] = request.app.state.tokens
    role = None
    for token, token_role in tokens.items():  # constant time per comparison
        if hmac.compare_digest(token.encode(), given):
            role = token_role
    if role is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token", headers=unauthorized)
    return Principal(role, hashlib.sha256(given).hexdigest()[:8])


def require(role: Role) -> Callable[[Principal], Principal]:
    """A dependency that admits `role` and every role above it (viewer < engineer < admin)."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if RANK[principal.role] < RANK[role]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the {role.value} role; your token has {principal.role.value}",
            )
        return principal

    return check


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Engineer = Annotated[Principal, Depends(require(Role.ENGINEER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
