"""Join requests (knocks on a class), decided by provisioning's rules (SQLite and PostgreSQL):
who knocked, and that accepting never makes an adult or a stranger a pupil (issue 18)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    JoinRequest,
    Person,
    Region,
    RequestStatus,
    Role,
    SchoolClass,
)
from provisioning.services import requests
from provisioning.services import schools as svc
from provisioning.services.requests import KnockerKind
from provisioning.services.schools import DomainError


@pytest.fixture
def session(migrated_session: Session) -> Session:
    return migrated_session  # SQLite, then PostgreSQL (tests/conftest.py)


def _people(session: Session) -> tuple[SchoolClass, dict[str, Person]]:
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    school = svc.create_school(session, region, "Школа № 57", academic_year=2026)
    other = svc.create_school(session, region, "Школа № 2", academic_year=2026)
    a5, b5 = svc.add_class(session, school, 5, "А"), svc.add_class(session, school, 5, "Б")
    x7 = svc.add_class(session, other, 7, "А")
    p = {
        key: svc.add_person(session, key, f"@{key}:hs")
        for key in ("ivan", "kolya", "olga", "boris", "director", "anna", "vera", "tanya",
                    "petya", "waiting")
    }  # fmt: skip
    svc.enrol(session, p["ivan"], a5, EnrolmentRole.PUPIL)
    svc.enrol(session, p["waiting"], a5, EnrolmentRole.PUPIL, confirmed=False)
    svc.enrol(session, p["kolya"], b5, EnrolmentRole.PUPIL)
    svc.enrol(session, p["petya"], x7, EnrolmentRole.PUPIL)
    svc.grant_school_role(session, p["olga"], school, Role.TEACHER)
    svc.enrol(session, p["olga"], a5, EnrolmentRole.CLASS_TEACHER)
    svc.grant_school_role(session, p["boris"], school, Role.TEACHER)
    svc.enrol(session, p["boris"], b5, EnrolmentRole.CLASS_TEACHER)
    svc.grant_school_role(session, p["director"], school, Role.SCHOOL_ADMIN)
    svc.grant_school_role(session, p["tanya"], other, Role.TEACHER)
    svc.link_parent(session, p["anna"], p["ivan"])
    svc.link_parent(session, p["vera"], p["kolya"])
    session.flush()
    return a5, p


def test_the_request_list_says_who_knocked(session: Session) -> None:
    a5, _ = _people(session)
    expected = {
        "ivan": KnockerKind.PUPIL_OF_CLASS,
        "waiting": KnockerKind.PUPIL_OF_CLASS,
        "kolya": KnockerKind.PUPIL_OF_OTHER_CLASS,
        "olga": KnockerKind.TEACHER_OF_CLASS,
        "anna": KnockerKind.PARENT_OF_CLASS,
        "boris": KnockerKind.STAFF_OF_SCHOOL,
        "director": KnockerKind.STAFF_OF_SCHOOL,
        "vera": KnockerKind.PARENT_IN_SCHOOL,
        "tanya": KnockerKind.NOT_OF_SCHOOL,  # a teacher of another school
        "petya": KnockerKind.NOT_OF_SCHOOL,  # a pupil of another school
        "nobody": KnockerKind.UNKNOWN_ACCOUNT,  # an account Parta never recorded
    }
    for key, kind in expected.items():
        assert requests.who_knocked(session, a5, f"@{key}:hs").kind is kind, key
    assert requests.who_knocked(session, a5, "@kolya:hs").pupil_class == "5Б"


def _request(session: Session, a5: SchoolClass, key: str) -> JoinRequest:
    return requests.record_knock(session, a5, f"@{key}:hs", key, None)


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("nobody", "is not a person of this school"),
        ("tanya", "is not a person of this school"),
        ("petya", "is not a person of this school"),
        ("kolya", "is a pupil of class 5Б"),
        ("boris", "does not teach class 5А"),
        ("director", "does not teach class 5А"),
        ("vera", "none of their children is in class 5А"),
    ],
)
def test_accepting_makes_nobody_a_pupil(session: Session, key: str, words: str) -> None:
    a5, _ = _people(session)
    request = _request(session, a5, key)
    with pytest.raises(DomainError, match=words):
        requests.accept_join_request(session, request, actor="@olga:hs", via="parta")
    assert request.status is RequestStatus.PENDING
    pupils = session.scalars(
        select(Person.matrix_user_id)
        .join(Enrolment, Enrolment.person_id == Person.id)
        .where(Enrolment.class_id == a5.id, Enrolment.role == EnrolmentRole.PUPIL)
    ).all()
    assert sorted(pupils) == ["@ivan:hs", "@waiting:hs"]
    if key == "nobody":  # and Parta recorded no person for the unknown account
        assert session.scalar(select(Person).where(Person.matrix_user_id == "@nobody:hs")) is None


def test_the_class_s_own_people_are_admitted_in_their_own_role(session: Session) -> None:
    a5, p = _people(session)
    for key in ("ivan", "olga", "anna", "waiting"):
        request = _request(session, a5, key)
        person = requests.accept_join_request(session, request, actor="@olga:hs", via="matrix")
        assert person.id == p[key].id and request.status is RequestStatus.APPROVED
    roles = {
        key: sorted(session.scalars(select(Enrolment.role).where(Enrolment.person_id == p[key].id)))
        for key in ("ivan", "olga", "anna", "waiting")
    }
    assert roles == {
        "ivan": [EnrolmentRole.PUPIL],
        "olga": [EnrolmentRole.CLASS_TEACHER],
        "anna": [],  # still a parent, placed through her child
        "waiting": [EnrolmentRole.PUPIL],
    }
    # A pupil of the class who waited for confirmation is confirmed by the class's teacher.
    waiting = svc.pupil_enrolment(session, p["waiting"])
    assert waiting is not None and waiting.confirmed_at is not None
