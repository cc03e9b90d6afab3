"""The school's rules on who may talk to whom, as pure functions over a `Directory`.

Each function answers one question the homeserver asks ("may this person invite that
one into this room?") with a `Decision`: allowed, or refused with the reason shown to the
person (`messages.py`). They read like the policy a director signs; docs/safety.md says
the same in plain words. Nothing here does I/O, so the tests cover the table directly.

The bot that provisions schools is a Synapse server admin: Synapse never asks the policy
about its own actions, and these functions let it through anyway for the callbacks that
are not skipped for admins (events, knocks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from school_policy.answers import ANSWER_EVENTS, answer_refusal
from school_policy.directory import (
    ANNOUNCEMENTS,
    CHANNELS,
    CLASS_CHANNEL,
    PUPIL_ROOMS,
    SCHOOL_EVENTS,
    SCHOOL_MATERIALS,
    SPACES,
    Directory,
    ManagedRoom,
)

PupilPeers = Literal["school", "class"]
AdultScope = Literal["region", "school"]

# State of a managed room only the provisioning bot may change, whatever the power levels
# say (someone with 100 could otherwise open a class to outsiders).
BOT_ONLY_STATE = frozenset(
    {
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.guest_access",
        "m.room.canonical_alias",
        "m.room.encryption",
        "m.room.server_acl",
        "m.room.tombstone",
        "m.space.child",
        "m.space.parent",
    }
)


@dataclass(frozen=True, slots=True)
class Rules:
    """The per-region choices (the module's config)."""

    server_name: str
    pupil_peers: PupilPeers = "school"  # pupils reach the whole school, or their class only
    adult_scope: AdultScope = "region"  # adults reach adults of the region, or of their school


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""  # a key of messages.MESSAGES when refused

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Decision(True)


def refuse(reason: str) -> Decision:
    return Decision(False, reason)


def is_local(rules: Rules, user: str) -> bool:
    return user.partition(":")[2] == rules.server_name  # exact: the name may carry a port


# --- people with people ---------------------------------------------------------------------


def may_meet(d: Directory, rules: Rules, a: str, b: str) -> Decision:
    """May `a` and `b` be together in a conversation (a direct chat or a group chat)?

    The question is symmetric; the reason is worded for `a`, who is asking.
    """
    if a == b or d.bot in (a, b) or a in d.region_admins or b in d.region_admins:
        return ALLOW
    a_pupil, b_pupil = d.pupils.get(a), d.pupils.get(b)
    if a_pupil is None and b_pupil is None:
        return _adults_meet(d, rules, a, b)
    if a_pupil is not None and b_pupil is not None:
        # Two children: of one school (or class), and both confirmed by their school.
        if a_pupil.school is None or b_pupil.school is None:
            return refuse("pupil_unconfirmed")
        if rules.pupil_peers == "class":
            same = a_pupil.school_class == b_pupil.school_class
            return ALLOW if same else refuse("other_class")
        return ALLOW if a_pupil.school == b_pupil.school else refuse("outsider")
    pupil, other = (a, b) if a_pupil is not None else (b, a)
    place = d.pupils[pupil]
    if other in d.parents.get(pupil, ()):
        return ALLOW  # a child and their own parent, always
    if not is_local(rules, other):
        return refuse("remote")  # we cannot know who is behind another server's account
    if place.school is None:
        return refuse("pupil_unconfirmed")  # until confirmed, only their own parents
    if d.is_staff_of(other, place.school):
        return ALLOW
    if other in d.children:
        return refuse("other_child")  # a parent, but of other children
    return refuse("outsider")


def _adults_meet(d: Directory, rules: Rules, a: str, b: str) -> Decision:
    if rules.adult_scope == "region":
        return ALLOW  # the region's adults may reach each other; federation decides remote ones
    a_children, b_children = d.classes_of_children(a), d.classes_of_children(b)
    if a in d.children and b in d.children and not (a in d.staff or b in d.staff):
        # Parents among themselves: the parents of one class.
        return ALLOW if a_children & b_children else refuse("adults_other_school")
    return ALLOW if d.schools_of(a) & d.schools_of(b) else refuse("adults_other_school")


def may_meet_everyone(d: Directory, rules: Rules, user: str, members: Iterable[str]) -> Decision:
    """May `user` join a conversation of these members? The first refusal decides."""
    for member in members:
        decision = may_meet(d, rules, user, member)
        if not decision:
            return decision
    return ALLOW


# --- people and rooms ----------------------------------------------------------------------


def _may_be_in_managed(d: Directory, rules: Rules, user: str, room: ManagedRoom) -> Decision:
    """May a person be a member of a school's own room (placed there by provisioning or not)?"""
    if user == d.bot or user in d.region_admins:
        return ALLOW
    if not is_local(rules, user):
        return ALLOW if room.federated else refuse("room_closed")  # unless the school opened it
    if d.is_pupil(user) and room.kind not in PUPIL_ROOMS:
        return refuse("not_for_pupils")  # the staff room and the parents chat
    if not d.belongs_to(user, room.school):
        return refuse("not_of_school")
    return ALLOW


def may_invite(
    d: Directory,
    rules: Rules,
    inviter: str,
    invitee: str,
    room_id: str,
    members: Iterable[str],
    *,
    invitee_knocked: bool = False,
) -> Decision:
    """May `inviter` invite `invitee` into the room whose current members are `members`?

    In a school's own room, anyone of that school may be invited by whoever the room's power
    levels let invite (the reconciler removes who does not belong there); inviting someone
    who knocked answers their join request, and a person who is not of the school is never
    admitted that way. Elsewhere the invitee must be allowed to meet the inviter and
    everyone already in the room.
    """
    room = d.rooms.get(room_id)
    if room is not None:
        if invitee_knocked and is_local(rules, invitee) and not d.belongs_to(invitee, room.school):
            # Admitting a stranger's join request would put them among the school's
            # pupils; Parta refuses to accept it as well (services/requests.py).
            return refuse("knock_stranger_invited")
        return _may_be_in_managed(d, rules, invitee, room)
    decision = may_meet(d, rules, inviter, invitee)
    if not decision:
        return decision
    return may_meet_everyone(d, rules, invitee, (m for m in members if m != inviter))


def may_join(
    d: Directory, rules: Rules, user: str, room_id: str, members: Iterable[str]
) -> Decision:
    """May `user` join the room (by its ID or an alias they learned, invited or not)?"""
    room = d.rooms.get(room_id)
    if room is not None:
        return _may_be_in_managed(d, rules, user, room)
    return may_meet_everyone(d, rules, user, members)


def may_knock(
    d: Directory, rules: Rules, user: str, room_id: str, reason: object = None
) -> Decision:
    """A knock on a school's space or room is a join request, which the school's staff answer.

    Only the school's own people ask (a pupil who left their class's space, a parent or a
    teacher missing from a room): anyone else (an account of no school, a person of
    another school, anyone of another server) is refused, because accepting a stranger's
    request is how an outsider would reach pupils. A newcomer joins through the school's
    invitation link instead.

    A knock's text is refused, on every room, rather than stripped: it is kept in the
    room's state and timeline, where every member (pupils too) reads it, so it is a way to
    write to children. Refusing tells the person to knock again without text, whereas
    stripping it would leave them thinking they were heard; and a knock is a signed
    membership event that also travels to other servers, so rewriting its content would
    change what those servers see, not what was said.
    """
    if not is_local(rules, user):
        return refuse("remote")
    room = d.rooms.get(room_id)
    if room is not None and not d.belongs_to(user, room.school):
        return refuse("knock_outsider")
    if isinstance(reason, str) and not reason.strip():
        return ALLOW
    return ALLOW if reason is None else refuse("knock_reason")


def may_join_from_another_server(
    d: Directory, rules: Rules, room_id: str, members: Iterable[str]
) -> Decision:
    """A user of another region joins a room of ours: never where pupils are, unless opted in."""
    room = d.rooms.get(room_id)
    if room is not None:
        return ALLOW if room.federated else refuse("room_closed")
    if any(d.is_pupil(m) for m in members):
        return refuse("remote")
    return ALLOW


def may_be_invited_from_another_server(d: Directory, rules: Rules, invitee: str) -> Decision:
    return refuse("remote") if d.is_pupil(invitee) else ALLOW


def may_create_room(
    d: Directory, rules: Rules, creator: str, request: Mapping[str, Any]
) -> Decision:
    """The `createRoom` request as a whole, before any event exists.

    Refusing here, rather than at the invites that follow, leaves no half-made room behind.
    """
    if request.get("visibility") == "public":
        return refuse("no_directory")  # the region's directory is not for school rooms
    for event in request.get("initial_state") or ():
        if isinstance(event, Mapping) and event.get("type") == "m.space.parent":
            decision = may_link_to_space(d, creator, str(event.get("state_key", "")))
            if not decision:
                return decision
    for invitee in request.get("invite") or ():
        decision = may_meet(d, rules, creator, str(invitee))
        if not decision:
            return decision
    return ALLOW


def may_link_to_space(d: Directory, user: str, space_id: str) -> Decision:
    """Only a school's staff put rooms into its spaces (a parent committee room, say)."""
    space = d.rooms.get(space_id)
    if space is None or user == d.bot or d.is_staff_of(user, space.school):
        return ALLOW
    return refuse("only_staff_create")


def may_publish(d: Directory, rules: Rules, user: str, room_id: str) -> Decision:
    return ALLOW if user == d.bot else refuse("no_directory")


def may_send_state(
    d: Directory, rules: Rules, user: str, room_id: str, event_type: str, state_key: str
) -> Decision:
    """Through the client API: settings of a school's rooms are the bot's alone."""
    if user == d.bot:
        return ALLOW
    room = d.rooms.get(room_id)
    if event_type == "m.space.child" and room is not None and room.kind in SPACES:
        return may_link_to_space(d, user, room_id)  # staff add their rooms to school spaces
    if event_type in BOT_ONLY_STATE and room is not None:
        return refuse("bot_only")
    if event_type == "m.space.parent":
        return may_link_to_space(d, user, state_key)
    return ALLOW


# Who posts in each kind of channel, as the refusal says it.
_CHANNEL_REFUSALS = {
    ANNOUNCEMENTS: "announcements",  # the administration
    SCHOOL_MATERIALS: "materials",  # the school's teachers and administration
    SCHOOL_EVENTS: "events",  # the school's class teachers and administration
    CLASS_CHANNEL: "channel",  # the class's teachers and the administration
}


def may_post(
    d: Directory,
    rules: Rules,
    sender: str,
    room_id: str,
    event_type: str,
    content: Mapping[str, Any],
) -> Decision:
    """In channels only moderators post, whatever the power levels were changed to by hand.

    Everyone else there answers: a poll response, a reaction, taking one's own back
    (`answers.py` judges what each carries, so none of them becomes a message). Whatever
    else they send (a message, a poll of their own, closing a poll) is refused with the
    channel's sentence. Only a channel's moderators start and end its polls.
    """
    room = d.rooms.get(room_id)
    if room is None or room.kind not in CHANNELS or _moderates(d, sender, room):
        return ALLOW
    if event_type in ANSWER_EVENTS:
        reason = answer_refusal(event_type, content)
        return ALLOW if reason is None else refuse(reason)
    return refuse(_CHANNEL_REFUSALS[room.kind])


def _moderates(d: Directory, sender: str, room: ManagedRoom) -> bool:
    """Does `sender` post in this channel (whatever power levels they were given)?"""
    if sender == d.bot or d.is_admin_of(sender, room.school):
        return True
    if room.kind == ANNOUNCEMENTS:
        return False
    if room.kind == SCHOOL_MATERIALS:
        # Every teacher of the school posts materials; a pupil or parent given power by
        # mistake is still refused.
        return d.is_staff_of(sender, room.school)
    if room.kind == SCHOOL_EVENTS:
        # Class teachers report on their classes' life (a subject teacher reads).
        return d.is_class_teacher_in(sender, room.school)
    return d.teaches_class(sender, room.school_class)
