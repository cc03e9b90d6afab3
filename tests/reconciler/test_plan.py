"""compute_plan: golden cases, convergence on a homeserver model, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning.reconciler.actions import describe
from provisioning.reconciler.plan import compute_plan
from provisioning.reconciler.state import (
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
from tests.reconciler.golden import CASES, load_case
from tests.reconciler.homeserver_model import apply_to_model, assert_matches

BOT = UserID("@parta:hs")
DOCS = DOCUMENTS_WIDGET_ID
PEOPLE = [UserID(f"@p{i}:hs") for i in range(6)]
ALIASES = [RoomAlias(f"school-s-{i}") for i in range(5)]
GUESTS = [UserID(f"@g{i}:other.region") for i in range(2)]  # people of a federated region


@pytest.mark.parametrize("path", sorted(CASES.glob("*.json")), ids=lambda p: p.stem)
def test_golden_case(path: Path) -> None:
    observed, desired, expected = load_case(path)
    assert [describe(action) for action in compute_plan(observed, desired)] == expected


def test_there_are_golden_cases() -> None:
    assert len(list(CASES.glob("*.json"))) >= 8


join_rules = st.sampled_from(
    [JoinRule("invite"), JoinRule("knock"), JoinRule("restricted", (ALIASES[0],))]
)
power_levels = st.builds(
    PowerLevels,
    users=st.dictionaries(st.sampled_from(PEOPLE), st.sampled_from([0, 50, 100]), max_size=3).map(
        lambda levels: tuple(sorted({**levels, BOT: 100}.items()))
    ),
    events_default=st.sampled_from([0, 50, 100]),
)
names = st.sampled_from(["5А", "5Б", "Учительская"])
member_sets = st.frozensets(st.sampled_from(PEOPLE), max_size=6)
observed_member_sets = st.frozensets(st.sampled_from(PEOPLE + GUESTS), max_size=6)
widgets = st.sampled_from(
    [None, RoomWidget("https://w/call/?room_id=$matrix_room_id", "Урок"), RoomWidget("u", "x")]
)
documents_widgets = st.sampled_from(
    [None, RoomWidget("https://w/documents/?room_id=$matrix_room_id", "Материалы", DOCS)]
)


@st.composite
def desired_states(draw: st.DrawFn) -> DesiredState:
    chosen = draw(st.lists(st.sampled_from(ALIASES), unique=True, max_size=5))
    rooms: dict[RoomAlias, DesiredRoom] = {}
    for index, alias in enumerate(chosen):
        spaces = [a for a in chosen[:index] if rooms[a].is_space]
        rooms[alias] = DesiredRoom(
            alias=alias,
            is_space=draw(st.booleans()),
            name=draw(names),
            topic=draw(names),
            join_rule=draw(join_rules),
            power_levels=draw(power_levels),
            members=draw(member_sets) | {BOT},
            parent=draw(st.sampled_from([None, *spaces])),
            federated=draw(st.booleans()),
            call_widget=draw(widgets),
            documents_widget=draw(documents_widgets),
        )
    people = draw(st.frozensets(st.sampled_from(PEOPLE)))
    members = set().union(*(room.members for room in rooms.values())) - {BOT}
    return DesiredState(BOT, {u: u[1:3] for u in sorted(people | members)}, rooms)


@st.composite
def observed_states(draw: st.DrawFn) -> ObservedState:
    rooms = {
        alias: ObservedRoom(
            alias=alias,
            room_id=f"!{alias}",
            name=draw(st.one_of(st.none(), names)),
            topic=draw(st.one_of(st.none(), names)),
            join_rule=draw(st.one_of(st.none(), join_rules)),
            power_levels=draw(st.one_of(st.none(), power_levels)),
            history_visibility=draw(st.sampled_from([None, "shared", "joined"])),
            members=draw(observed_member_sets) | {BOT},
            children=draw(st.frozensets(st.sampled_from(ALIASES), max_size=3)),
            parent=draw(st.sampled_from([None, *ALIASES])),
            invited=draw(observed_member_sets),
            call_widget=draw(widgets),
            documents_widget=draw(documents_widgets),
        )
        for alias in draw(st.lists(st.sampled_from(ALIASES), unique=True, max_size=5))
    }
    return ObservedState(draw(st.frozensets(st.sampled_from(PEOPLE))) | {BOT}, rooms)


@settings(max_examples=300, deadline=None)
@given(observed=observed_states(), desired=desired_states())
def test_applying_the_plan_converges(observed: ObservedState, desired: DesiredState) -> None:
    plan = compute_plan(observed, desired)
    after = apply_to_model(observed, plan, BOT)
    assert_matches(after, desired)
    assert compute_plan(after, desired) == []


@settings(max_examples=100, deadline=None)
@given(observed=observed_states(), desired=desired_states())
def test_the_plan_is_deterministic(observed: ObservedState, desired: DesiredState) -> None:
    shuffled = DesiredState(
        desired.bot,
        dict(reversed(list(desired.users.items()))),
        dict(reversed(list(desired.rooms.items()))),
    )
    assert compute_plan(observed, desired) == compute_plan(observed, shuffled)
