"""Who is calling: a Matrix access token, verified with the homeserver, mapped to roles.

A region admin manages every school; a school admin manages their own school only.
Every route checks this on the server; nothing relies on what a page shows.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.web import ApiError, bearer_token
from matrix.client import MatrixClient
from matrix.errors import HomeserverUnavailable, MatrixError
from provisioning.api.deps import SessionDep
from provisioning.db.models import Person
from provisioning.services.access import load_access

TOKEN_CACHE_SECONDS = 60.0
TOKEN_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Actor:
    user_id: str
    person_id: int
    region_admin: bool
    school_admin_of: frozenset[int] = field(default_factory=frozenset)

    def may_manage_school(self, school_id: int) -> bool:
        return self.region_admin or school_id in self.school_admin_of

    def require_school(self, school_id: int) -> None:
        if not self.may_manage_school(school_id):
            raise ApiError(403, "M_FORBIDDEN", "You do not administer this school")

    def require_region_admin(self) -> None:
        if not self.region_admin:
            raise ApiError(403, "M_FORBIDDEN", "Only a region administrator may do this")


class TokenCache:
    """Remembers verified tokens briefly (by hash), so each request needs no homeserver call."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, float]] = {}

    def get(self, token: str) -> str | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        entry = self._entries.get(key)
        if entry is None or entry[1] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[0]

    def put(self, token: str, user_id: str) -> None:
        if len(self._entries) >= TOKEN_CACHE_SIZE:
            self._entries.clear()  # simple and bounded; a miss costs one whoami
        key = hashlib.sha256(token.encode()).hexdigest()
        self._entries[key] = (user_id, time.monotonic() + TOKEN_CACHE_SECONDS)


def _actor_for(session: Session, user_id: str) -> Actor | None:
    person = session.scalar(select(Person).where(Person.matrix_user_id == user_id))
    if person is None:
        return None
    access = load_access(session, person)
    return Actor(
        user_id=user_id,
        person_id=person.id,
        region_admin=access.region_admin,
        school_admin_of=access.school_admin_of,
    )


async def verified_user(request: Request, token: str) -> str:
    """The user whose Matrix access token this is (asked at most once a minute per token).

    Raises:
        ApiError: 401 for a token the homeserver does not know, 503 if it does not answer.
    """
    cache: TokenCache = request.app.state.token_cache
    user_id = cache.get(token)
    if user_id is None:
        matrix: MatrixClient = request.app.state.matrix
        try:
            user_id = await matrix.whoami_for(token)
        except HomeserverUnavailable as exc:
            raise ApiError(503, "M_UNKNOWN", "The homeserver does not answer; try again") from exc
        except MatrixError as exc:
            raise ApiError(401, "M_UNKNOWN_TOKEN", "Your session has ended; sign in again") from exc
        cache.put(token, user_id)
    return user_id


async def current_actor(request: Request, session: SessionDep) -> Actor:
    token = bearer_token(request)
    if token is None:
        raise ApiError(
            401, "M_MISSING_TOKEN", "Sign in: send your Matrix access token as a Bearer token"
        )
    user_id = await verified_user(request, token)
    actor = await run_in_threadpool(_actor_for, session, user_id)
    if actor is None or not (actor.region_admin or actor.school_admin_of):
        raise ApiError(403, "M_FORBIDDEN", "Only region and school administrators use this API")
    return actor


CurrentAdmin = Annotated[Actor, Depends(current_actor)]
