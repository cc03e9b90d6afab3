"""A school for the parent meeting tests, placed on the running region's Synapse: class 5А
with its class teacher, a subject teacher, a pupil and her parent; class 6Б with its class
teacher; a director. And the parent reading the parents chat over the client API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from matrix.client import path
from parta.deployment import LocalDeployment
from provisioning.db.models import EnrolmentRole, ManagedRoom, Region, Role, RoomKind
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.harness.broadcasts import PASSWORD, set_passwords
from tests.harness.region import region_session
from tests.harness.waiting import wait_until
from tests.web.test_admin_ui import run_async  # runs a coroutine beside Playwright's loop

__all__ = ["PASSWORD", "MeetingSchool", "ParentReader", "make_school"]


@dataclass(frozen=True)
class MeetingSchool:
    school_id: int
    class_id: int  # 5А
    other_class_id: int  # 6Б
    director: str
    class_teacher: str  # of 5А
    subject_teacher: str  # teaches 5А a subject
    other_teacher: str  # class teacher of 6Б only
    parent: str  # a parent of a pupil of 5А
    parents_room_id: str  # 5А's parents chat


def make_school(region: LocalDeployment) -> MeetingSchool:
    """Create the school, ask for a reconcile run, wait for 5А's parents chat; passwords set."""
    tag = secrets.token_hex(3)
    with region_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        school = svc.create_school(
            session, region_row, f"Школа собраний {tag}", slug=f"m-{tag}", academic_year=2026
        )
        first, second = (
            svc.add_class(session, school, 5, "А"),
            svc.add_class(session, school, 6, "Б"),
        )
        maths = svc.add_subject(session, school, "Математика")
        allocate = LocalpartAllocator(session, region.settings.server_name)

        def person(name: str) -> Any:
            return svc.add_person(session, name, matrix_user_id=allocate.user_id(name))

        director, class_teacher = person(f"Директор {tag}"), person(f"Классная {tag}")
        subject_teacher, other_teacher = person(f"Предметник {tag}"), person(f"Чужой {tag}")
        pupil, parent = person(f"Ученица {tag}"), person(f"Мама {tag}")
        svc.grant_school_role(session, director, school, Role.SCHOOL_ADMIN)
        for teacher in (class_teacher, subject_teacher, other_teacher):
            svc.grant_school_role(session, teacher, school, Role.TEACHER)
        svc.enrol(session, class_teacher, first, EnrolmentRole.CLASS_TEACHER)
        svc.enrol(session, subject_teacher, first, EnrolmentRole.SUBJECT_TEACHER, subject=maths)
        svc.enrol(session, other_teacher, second, EnrolmentRole.CLASS_TEACHER)
        svc.enrol(session, pupil, first, EnrolmentRole.PUPIL)
        svc.link_parent(session, parent, pupil)
        session.commit()
        ids = {
            "director": director.matrix_user_id,
            "class_teacher": class_teacher.matrix_user_id,
            "subject_teacher": subject_teacher.matrix_user_id,
            "other_teacher": other_teacher.matrix_user_id,
            "parent": parent.matrix_user_id,
        }
        school_id, first_id, second_id = school.id, first.id, second.id
    s = region.settings
    httpx.post(
        f"{s.provisioning_url}/internal/reconcile",
        headers={"Authorization": f"Bearer {s.as_token.get_secret_value()}"},
        timeout=10,
    ).raise_for_status()

    def parents_room() -> str | None:
        with region_session(region) as session:
            return session.scalar(
                select(ManagedRoom.room_id).where(
                    ManagedRoom.class_id == first_id, ManagedRoom.kind == RoomKind.CLASS_PARENTS
                )
            )

    room_id = wait_until(parents_room, "5А's parents chat on the homeserver", within=180, every=1)
    run_async(set_passwords(region, *(str(v) for v in ids.values())))
    return MeetingSchool(
        school_id=school_id,
        class_id=first_id,
        other_class_id=second_id,
        parents_room_id=room_id,
        **{key: str(value) for key, value in ids.items()},
    )


class ParentReader:
    """A parent signed in over the client API, reading the parents chat (synchronously)."""

    def __init__(self, region: LocalDeployment, user_id: str, room_id: str) -> None:
        self._base = region.settings.homeserver_url
        self._bot = region.settings.bot_user_id
        self.room_id = room_id
        answer = httpx.post(
            f"{self._base}/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user_id},
                "password": PASSWORD,
            },
            timeout=30,
        )
        answer.raise_for_status()
        self._headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        wait_until(self._joined, "the parent in the parents chat", within=120, every=1)

    def _joined(self) -> bool:
        answer = httpx.get(
            f"{self._base}/_matrix/client/v3/joined_rooms", headers=self._headers, timeout=30
        )
        if self.room_id in answer.json().get("joined_rooms", []):
            return True
        # Invited by the reconciler: accept (a parent's client does the same).
        httpx.post(
            f"{self._base}{path('join', self.room_id)}", headers=self._headers, json={}, timeout=30
        )
        return False

    def bot_messages(self) -> list[str]:
        """The bot's latest message bodies in the chat, oldest first."""
        answer = httpx.get(
            f"{self._base}{path('rooms', self.room_id, 'messages')}",
            params={"dir": "b", "limit": "100"},
            headers=self._headers,
            timeout=30,
        )
        answer.raise_for_status()
        return [
            e["content"].get("body", "")
            for e in reversed(answer.json()["chunk"])
            if e["type"] == "m.room.message" and e["sender"] == self._bot
        ]

    def wait_for(self, *words: str, within: float = 90) -> str:
        """Until a message of the bot contains all the words; that message."""

        def probe() -> str | None:
            return next((b for b in self.bot_messages() if all(w in b for w in words)), None)

        return wait_until(probe, f"the bot to say {words}", within=within)

    def count(self, *words: str) -> int:
        return sum(all(w in b for w in words) for b in self.bot_messages())
