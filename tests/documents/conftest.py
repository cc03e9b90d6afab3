"""The documents tests' rooms and people, and the call tests' widget service fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from nio import AsyncClient, RoomCreateResponse

from bridge.matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.call.conftest import widget_host as widget_host
from tests.call.conftest import widgets_url as widgets_url
from tests.matrix_users import logged_in, new_person


@dataclass
class School:
    channel: str  # the class channel: the teacher posts, pupils read
    chat: str  # the class chat: everyone posts
    other: str  # another class's channel
    users: dict[str, str]
    clients: dict[str, AsyncClient]
    passwords: dict[str, str]


@pytest.fixture
async def school(region: LocalDeployment, bot: MatrixClient) -> AsyncIterator[School]:
    """A teacher's class channel and class chat with a pupil; another class's channel."""
    names = ("teacher", "pupil", "outsider")
    accounts = {name: await new_person(bot, region, name) for name in names}
    users = {name: user for name, (user, _) in accounts.items()}
    passwords = {name: password for name, (_, password) in accounts.items()}
    clients: dict[str, AsyncClient] = {}
    async with (
        logged_in(region, *accounts["teacher"]) as teacher,
        logged_in(region, *accounts["pupil"]) as pupil,
        logged_in(region, *accounts["outsider"]) as outsider,
    ):
        clients.update(teacher=teacher, pupil=pupil, outsider=outsider)
        rooms: list[str] = []
        for name, invite in (
            ("Канал 5А", [users["pupil"]]),
            ("Чат 5А", [users["pupil"]]),
            ("Канал 6Б", [users["outsider"]]),
        ):
            created = await teacher.room_create(
                name=name,
                invite=invite,
                power_level_override={"events_default": 50 if "Канал" in name else 0},
            )
            assert isinstance(created, RoomCreateResponse), created
            rooms.append(created.room_id)
        for room in rooms[:2]:
            await pupil.join(room)
        await outsider.join(rooms[2])
        yield School(rooms[0], rooms[1], rooms[2], users, clients, passwords)
