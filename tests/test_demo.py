"""`parta demo`: a populated school whose printed logins work, loaded once."""

from __future__ import annotations

import asyncio
import os
import re
import sys

from nio import AsyncClient, JoinedRoomsResponse, LoginResponse

from parta.deployment import LocalDeployment
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.services import library


async def parta_demo(region: LocalDeployment) -> str:
    env = {**os.environ, "PARTA_VAR_DIR": str(region.settings.var_dir)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parta", "demo", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_demo_school_logins_work_and_a_second_load_changes_nothing(
    region: LocalDeployment,
) -> None:
    first = await parta_demo(region)
    assert "Loaded the demo school." in first
    password = re.search(r"has the password (\S+):", first)
    pupil = re.search(r"ученик (\S+)\s+(@\S+)", first)
    parent = re.search(r"родитель ученика \S+\s+(@\S+)", first)
    assert password and pupil and parent, first
    assert password.group(1) == region.settings.demo_password.get_secret_value()
    rooms: dict[str, set[str]] = {}
    for user_id in (pupil.group(2), parent.group(1)):
        client = AsyncClient(region.settings.homeserver_url, user_id)
        try:
            assert isinstance(await client.login(password.group(1)), LoginResponse)
            joined = await client.joined_rooms()
            assert isinstance(joined, JoinedRoomsResponse)
            rooms[user_id] = set(joined.rooms)
        finally:
            await client.close()
    # Pupil: school space, announcements, materials, events, class space, chat, channel.
    # Parent: school space, announcements, materials, events, class space, channel, parents chat.
    assert len(rooms[pupil.group(2)]) == len(rooms[parent.group(1)]) == 7
    assert len(rooms[pupil.group(2)] & rooms[parent.group(1)]) == 6

    # A demo teacher finds the state's open lessons in the verified library.
    with make_session_factory(make_engine(region.settings.sqlalchemy_url))() as session:
        demo_items = {row.title for row in library.search(session, subject="математика", grade=5)}
    assert "Обыкновенные дроби: уроки 5 класса" in demo_items

    second = await parta_demo(region)
    assert "The demo school exists already." in second
