"""The school policy's decision table, as pure functions (no Synapse)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from school_policy import rules
from school_policy.directory import SnapshotError, load_directory
from school_policy.messages import MESSAGES

from tests.policy.region import RULES, SNAPSHOT, directory, u

D = directory()
REMOTE = "@someone:other.example"

MEET = [
    # (a, b, allowed, reason when refused)
    ("p5a1", "p5a2", True, ""),  # classmates
    ("p5a1", "p5b1", True, ""),  # schoolmates (pupil_peers: school)
    ("p5a1", "p2", False, "outsider"),  # a pupil of another school
    ("p5a1", "t5a", True, ""),  # their teacher
    ("p5a1", "t5b", True, ""),  # another teacher of their school
    ("p5a1", "director", True, ""),
    ("p5a1", "t2", False, "outsider"),  # another school's teacher
    ("p5a1", "par5a1", True, ""),  # their own parent
    ("p5a1", "par5a2", False, "other_child"),  # a classmate's parent
    ("par5a2", "p5a1", False, "other_child"),  # ... asked the other way round
    ("p5a1", "stranger", False, "outsider"),  # an account Parta does not know
    ("p5a1", "admin", True, ""),  # the region administrator
    ("newbie", "parnew", True, ""),  # unconfirmed: their own parent only
    ("newbie", "t5a", False, "pupil_unconfirmed"),
    ("newbie", "p5a1", False, "pupil_unconfirmed"),
    ("par5a1", "t5a", True, ""),  # adults: the region's adults (adult_scope: region)
    ("par5a1", "t2", True, ""),
    ("stranger", "t5a", True, ""),
]


@pytest.mark.parametrize(("a", "b", "allowed", "reason"), MEET)
def test_who_may_meet_whom(a: str, b: str, allowed: bool, reason: str) -> None:
    decision = rules.may_meet(D, RULES, u(a), u(b))
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_remote_users_never_meet_pupils_but_may_meet_adults() -> None:
    assert rules.may_meet(D, RULES, u("p5a1"), REMOTE).reason == "remote"
    assert rules.may_meet(D, RULES, REMOTE, u("p5a1")).reason == "remote"
    assert rules.may_meet(D, RULES, u("t5a"), REMOTE)


def test_pupils_of_one_class_only_when_the_region_says_so() -> None:
    by_class = replace(RULES, pupil_peers="class")
    assert rules.may_meet(D, by_class, u("p5a1"), u("p5a2"))
    assert rules.may_meet(D, by_class, u("p5a1"), u("p5b1")).reason == "other_class"
    assert rules.may_meet(D, by_class, u("p5a1"), u("t5b"))  # staff stay reachable


@pytest.mark.parametrize(
    ("a", "b", "allowed"),
    [
        ("par5a1", "par5a2", True),  # parents of one class
        ("par5a1", "par5b1", False),  # parents of another class
        ("par5a1", "t5b", True),  # their child's school's staff
        ("par5a1", "t2", False),  # another school's teacher
        ("t5a", "t5b", True),
        ("t5a", "t2", False),
        ("stranger", "t5a", False),
    ],
)
def test_adults_of_one_school_only_when_the_region_says_so(a: str, b: str, allowed: bool) -> None:
    by_school = replace(RULES, adult_scope="school")
    assert rules.may_meet(D, by_school, u(a), u(b)).allowed is allowed


@pytest.mark.parametrize(
    ("inviter", "invitee", "room", "allowed", "reason"),
    [
        ("t5a", "p5a1", "!chat51", True, ""),
        ("t5a", "t2", "!chat51", False, "not_of_school"),  # an outsider into a class chat
        ("t5a", "stranger", "!space1", False, "not_of_school"),
        ("t5a", REMOTE, "!chat51", False, "room_closed"),
        ("t5a", REMOTE, "!fed", True, ""),  # the school opened this room to other regions
        ("director", "p5a1", "!staff1", False, "not_for_pupils"),
        ("t5a", "p5a1", "!parents51", False, "not_for_pupils"),
        ("t5a", "par2", "!chat51", False, "not_of_school"),  # another school's parent
        ("t5a", "par5a1", "!parents51", True, ""),
    ],
)
def test_invites_into_the_schools_own_rooms(
    inviter: str, invitee: str, room: str, allowed: bool, reason: str
) -> None:
    invitee_id = invitee if invitee.startswith("@") else u(invitee)
    decision = rules.may_invite(D, RULES, u(inviter), invitee_id, room, [])
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_invites_into_other_rooms_follow_everyone_in_them() -> None:
    # A teacher's own group chat with a pupil in it: no outsider may be added to it.
    members = [u("t5a"), u("p5a1")]
    assert rules.may_invite(D, RULES, u("t5a"), u("p5a2"), "!group", members)
    refused = rules.may_invite(D, RULES, u("t5a"), u("t2"), "!group", members)
    assert refused.reason == "outsider"  # t2 may not meet p5a1, who is in the room
    # A pupil cannot bring a stranger into a chat, nor be brought into a stranger's chat.
    assert (
        rules.may_invite(D, RULES, u("p5a1"), u("stranger"), "!g2", [u("p5a1")]).reason
        == "outsider"
    )
    assert not rules.may_invite(D, RULES, u("t5a"), u("p5a1"), "!g3", [u("t5a"), u("stranger")])
    # A parent cannot add another child to a chat of parents.
    assert not rules.may_invite(D, RULES, u("par5a1"), u("p5a2"), "!g4", [u("par5a1")])


@pytest.mark.parametrize(
    ("user", "room", "members", "allowed", "reason"),
    [
        ("stranger", "!chat51", [], False, "not_of_school"),  # by a room ID they learned
        ("t2", "!ann1", [], False, "not_of_school"),
        ("par5a1", "!ann1", [], True, ""),
        ("p5a1", "!staff1", [], False, "not_for_pupils"),
        ("stranger", "!dm", ["@p5a1:region.test"], False, "outsider"),
        ("p5a2", "!dm", ["@p5a1:region.test"], True, ""),
    ],
)
def test_joins(user: str, room: str, members: list[str], allowed: bool, reason: str) -> None:
    decision = rules.may_join(D, RULES, u(user), room, members)
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_a_knock_is_a_join_request_of_the_schools_own_people() -> None:
    assert rules.may_knock(D, RULES, u("p5b1"), "!cspace51")  # a pupil of the school
    assert rules.may_knock(D, RULES, u("par5a1"), "!cspace51")  # a parent of the class
    assert rules.may_knock(D, RULES, u("t5b"), "!space1")  # a teacher of the school
    assert rules.may_knock(D, RULES, u("admin"), "!cspace51")  # the region's administrator
    # Issue 18: an account of no school and a teacher of another school were let in.
    for outsider in ("stranger", "newbie", "t2", "p2", "par2"):
        for room in ("!space1", "!cspace51"):
            assert rules.may_knock(D, RULES, u(outsider), room).reason == "knock_outsider"
    assert rules.may_knock(D, RULES, REMOTE, "!space1").reason == "remote"


def test_a_knock_carries_no_text_for_pupils_to_read() -> None:
    assert rules.may_knock(D, RULES, u("p5b1"), "!cspace51", "")
    assert rules.may_knock(D, RULES, u("p5b1"), "!cspace51", "  \n")
    for text in ("Напиши мне в telegram", "x", 7, {"text": "hi"}):
        decision = rules.may_knock(D, RULES, u("p5b1"), "!cspace51", text)
        assert decision.reason == "knock_reason"
    # The same in a room the school does not manage: pupils may be among its members.
    assert rules.may_knock(D, RULES, u("t5a"), "!group", "Пустите").reason == "knock_reason"
    assert rules.may_knock(D, RULES, u("t5a"), "!group")
    # Who may not knock at all hears that first.
    assert rules.may_knock(D, RULES, u("stranger"), "!space1", "hi").reason == "knock_outsider"


def test_staff_answer_a_knock_by_inviting_only_the_schools_people() -> None:
    def answer(inviter: str, invitee: str) -> rules.Decision:
        return rules.may_invite(
            D, RULES, u(inviter), invitee, "!cspace51", (), invitee_knocked=True
        )

    assert answer("t5a", u("p5a1"))  # a pupil of the class, back into its space
    assert answer("t5a", u("par5a1"))
    for stranger in ("stranger", "newbie", "t2", "p2"):
        assert answer("t5a", u(stranger)).reason == "knock_stranger_invited"
        assert answer("director", u(stranger)).reason == "knock_stranger_invited"
    assert answer("t5a", REMOTE).reason == "room_closed"
    assert not rules.may_invite(D, RULES, u("t5a"), u("stranger"), "!cspace51", ())  # no knock


def test_other_servers_stay_out_of_rooms_with_pupils() -> None:
    assert rules.may_join_from_another_server(D, RULES, "!chat51", []).reason == "room_closed"
    assert rules.may_join_from_another_server(D, RULES, "!staff1", []).reason == "room_closed"
    assert rules.may_join_from_another_server(D, RULES, "!fed", [])
    assert not rules.may_join_from_another_server(D, RULES, "!group", [u("t5a"), u("p5a1")])
    assert rules.may_join_from_another_server(D, RULES, "!group", [u("t5a"), u("t5b")])
    assert rules.may_be_invited_from_another_server(D, RULES, u("p5a1")).reason == "remote"
    assert rules.may_be_invited_from_another_server(D, RULES, u("t5a"))


def test_creating_rooms() -> None:
    create = rules.may_create_room
    assert create(D, RULES, u("p5a1"), {"invite": [u("p5a2")], "is_direct": True})
    assert (
        create(D, RULES, u("p5a1"), {"invite": [u("t2")], "is_direct": True}).reason == "outsider"
    )
    assert create(D, RULES, u("t2"), {"invite": [u("p5a1")]}).reason == "outsider"
    assert create(D, RULES, u("t5a"), {"visibility": "public"}).reason == "no_directory"
    in_class = {
        "initial_state": [{"type": "m.space.parent", "state_key": "!cspace51", "content": {}}]
    }
    assert create(D, RULES, u("t5a"), in_class)  # a parent committee room by the teacher
    assert create(D, RULES, u("par5a1"), in_class).reason == "only_staff_create"
    assert create(D, RULES, u("p5a1"), in_class).reason == "only_staff_create"


def test_settings_of_managed_rooms_are_the_bots() -> None:
    for event_type in ("m.room.power_levels", "m.room.join_rules", "m.room.history_visibility"):
        assert (
            rules.may_send_state(D, RULES, u("director"), "!chat51", event_type, "").reason
            == "bot_only"
        )
        assert rules.may_send_state(D, RULES, u("parta"), "!chat51", event_type, "")
        assert rules.may_send_state(D, RULES, u("p5a1"), "!own-room", event_type, "")
    assert rules.may_send_state(D, RULES, u("t5a"), "!chat51", "m.room.topic", "")
    assert (
        rules.may_send_state(D, RULES, u("p5a1"), "!own", "m.space.parent", "!space1").reason
        == "only_staff_create"
    )


def test_staff_add_rooms_to_the_schools_spaces() -> None:
    child = "m.space.child"
    assert rules.may_send_state(D, RULES, u("t5a"), "!cspace51", child, "!committee")
    assert rules.may_send_state(D, RULES, u("par5a1"), "!cspace51", child, "!x").reason == (
        "only_staff_create"
    )
    assert rules.may_send_state(D, RULES, u("t2"), "!space1", child, "!x").reason == (
        "only_staff_create"
    )
    # A managed room that is not a space keeps its links the bot's.
    assert rules.may_send_state(D, RULES, u("t5a"), "!chat51", child, "!x").reason == "bot_only"


TEXT = {"msgtype": "m.text", "body": "Отмена контрольной!"}
REACTION = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$post", "key": "👍"}}
ANSWER = {
    "m.relates_to": {"rel_type": "m.reference", "event_id": "$poll"},
    "org.matrix.msc3381.poll.response": {"answers": ["tomorrow"]},
}
POLL_START = {
    "org.matrix.msc3381.poll.start": {
        "question": {"org.matrix.msc1767.text": "Отменить контрольную?"},
        "kind": "org.matrix.msc3381.poll.disclosed",
        "max_selections": 1,
        "answers": [{"id": "yes", "org.matrix.msc1767.text": "Да"}],
    },
    "org.matrix.msc1767.text": "Отменить контрольную? 1. Да",
}
POLL_END = {
    "m.relates_to": {"rel_type": "m.reference", "event_id": "$poll"},
    "org.matrix.msc3381.poll.end": {},
    "org.matrix.msc1767.text": "Опрос закрыт",
}


def post(user: str, room: str, event_type: str, content: dict[str, Any]) -> rules.Decision:
    return rules.may_post(D, RULES, u(user), room, event_type, content)


def test_only_moderators_post_in_channels() -> None:
    message = "m.room.message"
    assert post("t5a", "!chan51", message, TEXT)
    assert post("director", "!chan51", message, TEXT)
    assert post("t5b", "!chan51", message, TEXT).reason == "channel"
    assert post("p5a1", "!chan51", message, TEXT).reason == "channel"
    assert post("p5a1", "!chan51", "m.room.redaction", {})  # taking one's own back
    assert post("t5a", "!ann1", message, TEXT).reason == "announcements"
    assert post("director", "!ann1", message, TEXT)
    assert post("p5a1", "!chat51", message, TEXT)  # class chat: everyone


def test_every_teacher_of_the_school_posts_its_materials_and_nobody_else() -> None:
    message = "m.room.message"
    assert post("t5a", "!mat1", message, TEXT)
    assert post("t5b", "!mat1", message, TEXT)  # not only a class's teacher
    assert post("director", "!mat1", message, TEXT)
    assert post("t2", "!mat1", message, TEXT).reason == "materials"
    assert post("p5a1", "!mat1", message, TEXT).reason == "materials"
    assert post("par5a1", "!mat1", message, TEXT).reason == "materials"
    assert post("p5a1", "!mat1", "m.room.redaction", {})  # taking one's own back


@pytest.mark.parametrize("room", ["!chan51", "!ann1", "!mat1"])
@pytest.mark.parametrize("user", ["p5a1", "par5a1", "t5b", "t2"])
def test_in_every_channel_everyone_answers_polls_and_reacts(room: str, user: str) -> None:
    assert post(user, room, "org.matrix.msc3381.poll.response", ANSWER)
    assert post(user, room, "m.reaction", REACTION)
    assert post(user, room, "m.room.redaction", {"redacts": "$my-reaction"})


@pytest.mark.parametrize(
    ("room", "reason"),
    [("!chan51", "channel"), ("!ann1", "announcements"), ("!mat1", "materials")],
)
def test_only_moderators_start_and_end_polls_in_channels(room: str, reason: str) -> None:
    for event_type, content in (
        ("org.matrix.msc3381.poll.start", POLL_START),
        ("m.poll.start", POLL_START),
        ("org.matrix.msc3381.poll.end", POLL_END),
        ("m.poll.end", POLL_END),
        ("m.sticker", {"body": "стикер", "url": "mxc://x/y", "info": {}}),
    ):
        assert post("p5a1", room, event_type, content).reason == reason
        assert post("director", room, event_type, content)  # a moderator of every channel
    assert post("t5a", "!chan51", "org.matrix.msc3381.poll.start", POLL_START)
    assert post("t5a", "!chan51", "org.matrix.msc3381.poll.end", POLL_END)


def test_answers_are_judged_only_where_posting_is_closed() -> None:
    # A moderator's reaction, a chat's or a room Parta does not manage: left to Synapse.
    long_key = {"m.relates_to": {**REACTION["m.relates_to"], "key": "x" * 200}}
    assert post("t5a", "!chan51", "m.reaction", long_key)
    assert post("p5a1", "!chat51", "m.reaction", long_key)
    assert post("p5a1", "!elsewhere", "m.reaction", long_key)
    assert post("p5a1", "!chan51", "m.reaction", long_key).reason == "channel_reaction"


def test_class_teachers_and_the_administration_report_the_school_s_events() -> None:
    message = "m.room.message"
    assert post("t5a", "!events1", message, TEXT)  # the class teacher of 5А
    assert post("director", "!events1", message, TEXT)
    assert post("admin", "!events1", message, TEXT)  # the region's
    # A subject teacher of 5А, a teacher of another school, pupils and parents read only.
    for reader in ("subj5a", "t2", "p5a1", "par5a1"):
        assert post(reader, "!events1", message, TEXT).reason == "events"
    assert post("p5a1", "!events1", "m.room.redaction", {})  # taking one's own back


def test_publishing_to_the_directory_is_off() -> None:
    assert rules.may_publish(D, RULES, u("director"), "!space1").reason == "no_directory"
    assert rules.may_publish(D, RULES, u("parta"), "!space1")


def test_every_refusal_has_a_message_in_both_languages() -> None:
    reasons = {"outsider", "other_class", "other_child", "pupil_unconfirmed", "remote",
               "not_of_school", "not_for_pupils", "knock_outsider", "knock_reason",
               "knock_stranger_invited", "only_staff_create",
               "bot_only", "channel", "announcements", "materials", "events", "no_directory",
               "channel_poll_answer", "channel_reaction", "channel_redaction_reason",
               "adults_other_school",
               "policy_unavailable", "room_closed",
               "sso_unknown", "sso_unverified", "sso_unavailable"}  # fmt: skip
    assert set(MESSAGES) == reasons
    for texts in MESSAGES.values():
        assert set(texts) == {"ru", "en"} and all(len(t) > 20 for t in texts.values())


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", json.dumps({**SNAPSHOT, "format": 2}).encode(),
     json.dumps({**SNAPSHOT, "classes": {"x": {"school": 1}}}).encode()],
)  # fmt: skip
def test_a_bad_snapshot_is_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(SnapshotError, match="snapshot"):
        load_directory(raw)
