"""The room helpers against the real Synapse: each may be called again, and an answer
lost after the homeserver acted (simulated by sending the same request twice) counts
as done."""

from __future__ import annotations

import secrets

import pytest

from matrix import rooms
from matrix.client import MatrixClient, path
from matrix.errors import Forbidden
from parta.deployment import LocalDeployment
from tests.matrix_users import new_person

_ROOM = {"preset": "private_chat", "name": "Helpers", "visibility": "private"}


async def _new_room(bot: MatrixClient, region: LocalDeployment) -> str:
    alias_name = f"docs-test-rooms-{secrets.token_hex(4)}"
    ensured = await rooms.create_or_adopt(bot, alias_name, region.settings.server_name, _ROOM)
    return ensured.room_id


async def test_create_or_adopt_twice_gives_one_room(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    server = region.settings.server_name
    alias_name = f"docs-test-rooms-{secrets.token_hex(4)}"
    first = await rooms.create_or_adopt(bot, alias_name, server, _ROOM)
    again = await rooms.create_or_adopt(bot, alias_name, server, {**_ROOM, "name": "Other"})
    assert first.created and not again.created
    assert again.room_id == first.room_id
    assert await rooms.resolve_alias(bot, f"#{alias_name}:{server}") == first.room_id
    name = await rooms.read_state(bot, first.room_id, "m.room.name")
    assert name["name"] == "Helpers"  # the adopted room is left as it was


async def test_resolving_an_unknown_alias_is_none(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    alias = f"#docs-test-none-{secrets.token_hex(4)}:{region.settings.server_name}"
    assert await rooms.resolve_alias(bot, alias) is None


async def test_join_kick_and_leave_twice_are_done(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    room_id = await _new_room(bot, region)
    user_id, _ = await new_person(bot, region, "pupil")
    await rooms.admin_join(bot, room_id, user_id)
    await rooms.admin_join(bot, room_id, user_id)  # "already in the room": done
    assert await rooms.membership(bot, room_id, user_id) == "join"

    await rooms.kick(bot, room_id, user_id, reason="test")
    await rooms.kick(bot, room_id, user_id, reason="test")  # not in the room: done
    assert await rooms.membership(bot, room_id, user_id) == "leave"
    assert await rooms.membership(bot, room_id, "@nobody-here:example.org") is None

    await rooms.leave(bot, room_id)
    await rooms.leave(bot, room_id)  # left already: done
    joined = await rooms.joined_rooms(bot)
    assert room_id not in joined


async def test_a_lost_answer_of_a_join_is_counted_as_done(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    """The first request went through, its answer never came: the helper's retry meets
    Synapse's refusal ("already in the room") and returns as if it had succeeded."""
    room_id = await _new_room(bot, region)
    user_id, _ = await new_person(bot, region, "teacher")
    # What the lost first attempt did:
    await bot.request(
        "POST", path("join", room_id, base="/_synapse/admin/v1"), body={"user_id": user_id}
    )
    with pytest.raises(Forbidden):  # what the retry meets, without the helper
        await bot.request(
            "POST", path("join", room_id, base="/_synapse/admin/v1"), body={"user_id": user_id}
        )
    await rooms.admin_join(bot, room_id, user_id)  # the helper's retry: done
    assert await rooms.membership(bot, room_id, user_id) == "join"


async def test_a_refused_kick_of_a_member_is_raised(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    """Only "not in the room" counts as done: a kick by a bot that left is refused."""
    room_id = await _new_room(bot, region)
    user_id, _ = await new_person(bot, region, "pupil")
    await rooms.admin_join(bot, room_id, user_id)
    await rooms.leave(bot, room_id)
    with pytest.raises(Forbidden):
        await rooms.kick(bot, room_id, user_id, reason="test")


async def test_state_messages_edits_and_redactions(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    room_id = await _new_room(bot, region)
    await rooms.put_state(bot, room_id, "m.room.topic", {"topic": "one"})
    await rooms.put_state(bot, room_id, "m.room.topic", {"topic": "one"})  # same state
    assert (await rooms.read_state(bot, room_id, "m.room.topic"))["topic"] == "one"
    assert any(e["type"] == "m.room.topic" for e in await rooms.read_all_state(bot, room_id))

    content = {"msgtype": "m.text", "body": "hello"}
    txn = f"parta-test-{secrets.token_hex(6)}"
    event_id = await rooms.send_message(bot, room_id, content, transaction_id=txn)
    again = await rooms.send_message(bot, room_id, content, transaction_id=txn)
    assert again == event_id  # a retried send is the same event

    edit = {
        "msgtype": "m.text",
        "body": "* hello again",
        "m.new_content": {"msgtype": "m.text", "body": "hello again"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    }
    edit_id = await rooms.send_message(bot, room_id, edit)
    relations = await rooms.read_relations(bot, room_id, event_id, "m.replace")
    assert [e["event_id"] for e in relations["chunk"]] == [edit_id]
    page = await rooms.read_messages(bot, room_id, query={"dir": "b", "limit": "10"})
    assert event_id in {e["event_id"] for e in page["chunk"]}

    await rooms.redact(bot, room_id, event_id, reason="test")
    redacted = await rooms.read_event(bot, room_id, event_id)
    assert "body" not in redacted.get("content", {})
