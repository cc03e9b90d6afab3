"""Read golden reconcile cases: compact JSON with the spec's defaults filled in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provisioning.reconciler.state import (
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

CASES = Path(__file__).resolve().parent.parent / "data" / "reconcile"


def _power(data: dict[str, Any] | None) -> PowerLevels | None:
    if data is None:
        return None
    return PowerLevels(
        users=tuple(sorted((UserID(u), int(v)) for u, v in data["users"].items())),
        events_default=int(data["events_default"]),
    )


def _rule(data: dict[str, Any] | None) -> JoinRule | None:
    if data is None:
        return None
    return JoinRule(data["rule"], tuple(RoomAlias(a) for a in data.get("allow", [])))


def _widget(data: dict[str, Any] | None) -> RoomWidget | None:
    return None if data is None else RoomWidget(data["url"], data["name"])


def load_case(path: Path) -> tuple[ObservedState, DesiredState, list[dict[str, Any]]]:
    case = json.loads(path.read_text(encoding="utf-8"))
    want = case["desired"]
    desired = DesiredState(
        bot=UserID(case["bot"]),
        users={UserID(u): name for u, name in want["users"].items()},
        rooms={
            RoomAlias(r["alias"]): DesiredRoom(
                alias=RoomAlias(r["alias"]),
                is_space=r.get("is_space", False),
                name=r["name"],
                topic=r.get("topic", ""),
                join_rule=_rule(r["join_rule"]) or JoinRule("invite"),
                power_levels=_power(r["power"]) or PowerLevels((), 0),
                members=frozenset(UserID(m) for m in r["members"]),
                parent=r.get("parent"),
                federated=r.get("federated", False),
                call_widget=_widget(r.get("call_widget")),
            )
            for r in want["rooms"]
        },
    )
    have = case["observed"]
    observed = ObservedState(
        users=frozenset(UserID(u) for u in have["users"]),
        rooms={
            RoomAlias(r["alias"]): ObservedRoom(
                alias=RoomAlias(r["alias"]),
                room_id=r["room_id"],
                name=r.get("name"),
                topic=r.get("topic", ""),
                join_rule=_rule(r.get("join_rule")),
                power_levels=_power(r.get("power")),
                history_visibility=r.get("history_visibility", "shared"),
                members=frozenset(UserID(m) for m in r["members"]),
                children=frozenset(RoomAlias(c) for c in r.get("children", [])),
                parent=r.get("parent"),
                invited=frozenset(UserID(m) for m in r.get("invited", [])),
                call_widget=_widget(r.get("call_widget")),
            )
            for r in have["rooms"]
        },
    )
    return observed, desired, case["plan"]
