"""The audit log in words: every action code and every automatic actor, in both languages.

Events are stored with a stable code (`class.created`) and the actor's Matrix user ID or
an `AutomaticActor`; a director reads neither. The log's filter, its rows' "who" and its
CSV take their words from here, so a new code is named once. `tests/test_audit_labels.py`
finds every code the sources record and fails while one has no label here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from provisioning.audit import AutomaticActor
from provisioning.i18n import N_

ACTION_LABELS: Final[dict[str, str]] = {
    "region.created": N_("Region set up"),
    "role.granted": N_("Role given"),
    "school.created": N_("School created"),
    "school.settings": N_("School settings changed"),
    "school.promoted": N_("New school year"),
    "class.created": N_("Class created"),
    "enrolment.added": N_("Added to a class"),
    "parent.linked": N_("Parent linked to a child"),
    "pupil.moved": N_("Pupil moved to another class"),
    "pupil.confirmed": N_("Pupil confirmed"),
    "pupil.declined": N_("Pupil not accepted"),
    "teacher.left": N_("Teacher left the school"),
    "class.teacher_appointed": N_("Class teacher appointed"),
    "class.renamed": N_("Class renamed"),
    "class.archived": N_("Class archived"),
    "school.renamed": N_("School renamed"),
    "person.updated": N_("Person's details corrected"),
    "person.removed": N_("Person removed from the school"),
    "matrix.refused": N_("Change refused by the homeserver"),
    "teacher.applied": N_("Teacher's application"),
    "teacher.approved": N_("Teacher approved"),
    "teacher.declined": N_("Teacher not approved"),
    "invite.created": N_("Invite link made"),
    "invite.revoked": N_("Invite link withdrawn"),
    "invite.used": N_("Joined through an invite link"),
    "invite.not_me": N_("«This is not me» on a personal link: link suspended"),
    "invite.not_me_reissued": N_("«This is not me» settled: a new personal link made"),
    "invite.not_me_dismissed": N_("«This is not me» dismissed"),
    "person.renamed": N_("Name corrected"),
    "account.password_reset": N_("New password set after an SMS code"),
    "join.requested": N_("Request to join a class"),
    "join.accepted": N_("Request to join accepted"),
    "join.declined": N_("Request to join declined"),
    "room.federation_opened": N_("Room opened to other regions"),
    "room.federation_closed": N_("Room closed to other regions"),
    "room.call_added": N_("Call added to a room"),
    "room.call_removed": N_("Call removed from a room"),
    "library.add": N_("Added to the library"),
    "library.edit": N_("Library item changed"),
    "library.withdraw": N_("Withdrawn from the library"),
    "library.restore": N_("Published again in the library"),
    "broadcast.scheduled": N_("Broadcast scheduled"),
    "broadcast.edited": N_("Broadcast changed"),
    "broadcast.cancelled": N_("Broadcast cancelled"),
    "meeting.scheduled": N_("Parent meeting scheduled"),
    "meeting.edited": N_("Parent meeting changed"),
    "meeting.cancelled": N_("Parent meeting cancelled"),
    "meeting.minutes": N_("Parent meeting minutes saved"),
    "appointment.offered": N_("Appointment slots offered"),
    "appointment.booked": N_("Appointment booked"),
    "appointment.cancelled": N_("Appointment cancelled by the parent"),
    "appointment.slot_cancelled": N_("Appointment slot cancelled"),
    "poll.created": N_("Poll started"),
    "poll.ended": N_("Poll ended"),
}

ACTOR_LABELS: Final[dict[str, str]] = {
    AutomaticActor.SYSTEM: N_("Parta, automatically"),
    AutomaticActor.RECONCILER: N_("Parta, placing people in Matrix rooms"),
    AutomaticActor.BRIDGE: N_("Parta's bot in Matrix"),
    AutomaticActor.REGISTRATION_FORM: N_("The registration form"),
    AutomaticActor.COMMAND_LINE: N_("A command on the server (parta)"),
    AutomaticActor.DEMO: N_("The demo school"),
}


def action_label(code: str, gettext: Callable[[str], str]) -> str:
    """The action in the reader's words; an unknown code (from a newer version) as it is."""
    label = ACTION_LABELS.get(code)
    return gettext(label) if label else code


def actor_label(actor: str, gettext: Callable[[str], str]) -> str | None:
    """Words for an automatic actor; None for a person, who is shown by their Matrix ID."""
    label = ACTOR_LABELS.get(actor)
    return gettext(label) if label else None
