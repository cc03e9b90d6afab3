"""The library tests' people and items, put straight into the running region's database.

The school fixture's people are Matrix accounts only; here the teacher becomes a teacher
of a fresh school and the pupil a pupil of its 5А, as provisioning knows them, so the
provisioning service's check of who may use the library answers as in a real region.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from sqlalchemy import select

from parta.deployment import LocalDeployment
from provisioning.db.models import EnrolmentRole, Person, Region, Role
from provisioning.services import library
from provisioning.services import schools as svc
from provisioning.services.library import LibraryItemIn
from tests.documents.conftest import School
from tests.harness.region import region_session


def make_staff(region: LocalDeployment, school: School) -> None:
    """The school's teacher is a teacher in provisioning; its pupil a pupil of 5А."""
    tag = secrets.token_hex(3)
    with region_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        row = svc.create_school(
            session, region_row, f"Школа библиотеки {tag}", slug=f"lib-{tag}", academic_year=2026
        )
        grade_5a = svc.add_class(session, row, 5, "А")
        teacher = svc.add_person(session, "Учитель", matrix_user_id=school.users["teacher"])
        svc.grant_school_role(session, teacher, row, Role.TEACHER)
        pupil = svc.add_person(session, "Ученик", matrix_user_id=school.users["pupil"])
        svc.enrol(session, pupil, grade_5a, EnrolmentRole.PUPIL)
        session.commit()


def make_parent(region: LocalDeployment, user_id: str, *, of: str) -> None:
    """The account `user_id` becomes, in provisioning, a parent of the pupil `of`."""
    with region_session(region) as session:
        child = session.scalar(select(Person).where(Person.matrix_user_id == of))
        assert child is not None
        parent = svc.add_person(session, "Родитель", matrix_user_id=user_id)
        svc.link_parent(session, parent, child)
        session.commit()


def add_items(region: LocalDeployment, *items: dict[str, Any]) -> list[int]:
    """Add library items (fields of `LibraryItemIn`, plus `withdrawn`); their IDs."""
    ids = []
    with region_session(region) as session:
        for fields in items:
            fields = dict(fields)
            withdrawn = fields.pop("withdrawn", False)
            row = library.create(session, LibraryItemIn(**fields), actor="tests", person_id=None)
            if withdrawn:
                library.withdraw(session, row.id, actor="tests")
            ids.append(row.id)
        session.commit()
    return ids


async def upload_as_bot(region: LocalDeployment, name: str, data: bytes, mimetype: str) -> str:
    """Put a file into Synapse's media repository as the bot, as a library admin would."""
    s = region.settings
    async with httpx.AsyncClient(base_url=s.homeserver_url, timeout=60) as http:
        answer = await http.post(
            "/_matrix/media/v3/upload",
            params={"filename": name},
            content=data,
            headers={
                "Authorization": f"Bearer {s.as_token.get_secret_value()}",
                "Content-Type": mimetype,
            },
        )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["content_uri"])


def item(title: str, subject: str, grades: tuple[int, int], **fields: Any) -> dict[str, Any]:
    """A link item by default; pass kind="file", url=mxc, file_name=… for a file."""
    return {
        "title": title,
        "subject": subject,
        "grade_from": grades[0],
        "grade_to": grades[1],
        "description": f"{title}: проверенный материал",
        "kind": "link",
        "url": "https://resh.edu.ru/subject/lesson/" + secrets.token_hex(4),
        "licence": "CC BY 4.0",
        "source": "РЭШ",
        "verified_by": "Методист Иванова",
        **fields,
    }
