"""apply(): one room the homeserver refuses does not stop the others, nor hang the run.

The homeserver here is an in-memory transport that refuses to create one room: the one
thing a real Synapse cannot be made to do on demand. Everything else (the handlers, the
records in the database) is the real code.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy.orm import Session

from matrix.client import MatrixClient, RetryPolicy
from provisioning.db.models import ManagedRoom
from provisioning.reconciler.actions import Action, CreateRoom, LinkChild
from provisioning.reconciler.apply import apply, with_widget
from provisioning.reconciler.plan import compute_plan
from provisioning.reconciler.state import (
    CALL_WIDGET_ID,
    DOCUMENTS_WIDGET_ID,
    DesiredRoom,
    DesiredState,
    JoinRule,
    ObservedRoom,
    ObservedState,
    PowerLevels,
    RoomAlias,
    RoomWidget,
    UserID,
)

BOT = UserID("@parta:hs")
PUPIL = UserID("@pupil:hs")
SPACE, INSIDE, ELSEWHERE = RoomAlias("school-s"), RoomAlias("school-s-chat"), RoomAlias("school-t")


def room(alias: RoomAlias, *, space: bool = False, inside: RoomAlias | None = None) -> DesiredRoom:
    rule = JoinRule("restricted", (inside,)) if inside else JoinRule("invite")
    return DesiredRoom(
        alias=alias, is_space=space, name=alias, topic=alias, join_rule=rule,
        power_levels=PowerLevels(users=(), events_default=0), members=frozenset({BOT, PUPIL}),
        parent=inside, kind="class_chat",
    )  # fmt: skip


def homeserver(refused_alias: str, log: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        log.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/createRoom"):
            alias = json.loads(request.content)["room_alias_name"]
            if alias == refused_alias:
                return httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "no"})
            return httpx.Response(200, json={"room_id": f"!{alias}"})
        return httpx.Response(200, json={})

    return httpx.MockTransport(handle)


async def test_a_refused_room_skips_what_needs_it_and_applies_the_rest(
    migrated_session: Session,
) -> None:
    desired = DesiredState(
        BOT,
        {PUPIL: "Pupil"},
        {
            SPACE: room(SPACE, space=True),
            INSIDE: room(INSIDE, inside=SPACE),
            ELSEWHERE: room(ELSEWHERE),
        },
    )
    observed = ObservedState(users=frozenset({BOT, PUPIL}))
    plan = compute_plan(observed, desired)
    log: list[str] = []
    retry = RetryPolicy(attempts=1, deadline=5)
    transport = homeserver(SPACE, log)
    async with MatrixClient("http://hs.invalid", "t", retry=retry, transport=transport) as client:
        # Bounded: a room waiting for its space must not wait forever when the space failed.
        report = await asyncio.wait_for(
            apply(plan, client, migrated_session, observed, server_name="hs", bot=BOT), 30
        )

    assert [type(f.action) for f in report.failed] == [CreateRoom]
    assert "M_FORBIDDEN" in report.failed[0].error

    # What needs the space waits for the next run: the room restricted to it, the link, and
    # the joins into both. The other room is made, recorded, and its member placed.
    def key(action: Action) -> tuple[str, str]:
        match action:
            case CreateRoom(room=made):
                return "CreateRoom", made.alias
            case LinkChild(child=child):
                return "LinkChild", child
            case _:
                return type(action).__name__, str(getattr(action, "alias", ""))

    done = {("CreateRoom", ELSEWHERE), ("Join", ELSEWHERE), ("CreateRoom", SPACE)}
    needs_space = {key(a) for a in plan} - done
    assert needs_space == {
        ("CreateRoom", INSIDE), ("LinkChild", INSIDE), ("Join", SPACE), ("Join", INSIDE)
    }  # fmt: skip
    assert report.skipped == len(needs_space)
    assert report.by_action == {"CreateRoom": 1, "Join": 1}
    assert migrated_session.get(ManagedRoom, ELSEWHERE) is not None
    assert migrated_session.get(ManagedRoom, SPACE) is None
    assert migrated_session.get(ManagedRoom, INSIDE) is None
    assert f"POST /_synapse/admin/v1/join/!{ELSEWHERE}" in log


def test_a_widget_set_or_taken_out_lands_in_its_own_field() -> None:
    observed = ObservedRoom(
        alias=SPACE,
        room_id="!s",
        name=None,
        topic=None,
        join_rule=None,
        power_levels=None,
        history_visibility=None,
        members=frozenset({BOT}),
    )
    call = RoomWidget("https://w/call", "Звонок")
    documents = RoomWidget("https://w/docs", "Документы", DOCUMENTS_WIDGET_ID)
    with_both = with_widget(
        with_widget(observed, CALL_WIDGET_ID, call), DOCUMENTS_WIDGET_ID, documents
    )
    assert (with_both.call_widget, with_both.documents_widget) == (call, documents)
    without_call = with_widget(with_both, CALL_WIDGET_ID, None)
    assert (without_call.call_widget, without_call.documents_widget) == (None, documents)
    with pytest.raises(ValueError):
        with_widget(observed, "someone-elses-widget", call)
