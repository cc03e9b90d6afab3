"""Individual appointments' rules on a migrated database (SQLite and PostgreSQL): who
offers, who sees and books, the unique holds (one parent per slot, one slot per offer and
parent), cancellations freeing the slot, and what a booking owes its room at a moment. The
room and its messages in Matrix, and the pages, are in tests/web/test_appointments_ui.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.orm import Session

from provisioning.appointments import service
from provisioning.appointments.clock import due
from provisioning.db.base import Base
from provisioning.db.models import EnrolmentRole, Person, Region, Role
from provisioning.services import schools as svc
from provisioning.services.access import Access, load_access

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
START = NOW + timedelta(days=3)


def _form(minutes: int | None = 15, hours: float = 1) -> service.OfferForm:
    return service.OfferForm(START, START + timedelta(hours=hours), minutes)


@pytest.fixture
def people(migrated_session: Session) -> dict[str, Person]:
    session = migrated_session
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    found: dict[str, Person] = {}
    for tag in ("a", "b"):  # two schools, each with a class, a teacher, a pupil and a parent
        school = svc.create_school(session, region, f"Школа {tag}", academic_year=2026)
        klass, other = (
            svc.add_class(session, school, 5, "А"),
            svc.add_class(session, school, 6, "Б"),
        )
        teacher = svc.add_person(session, f"teacher {tag}", f"@teacher{tag}:hs")
        svc.grant_school_role(session, teacher, school, Role.TEACHER)
        svc.enrol(session, teacher, klass, EnrolmentRole.CLASS_TEACHER)
        director = svc.add_person(session, f"director {tag}", f"@director{tag}:hs")
        svc.grant_school_role(session, director, school, Role.SCHOOL_ADMIN)
        for key, group in (("", klass), ("other_", other)):
            pupil = svc.add_person(session, f"{key}pupil {tag}", f"@{key}pupil{tag}:hs")
            svc.enrol(session, pupil, group, EnrolmentRole.PUPIL)
            parent = svc.add_person(session, f"{key}parent {tag}", f"@{key}parent{tag}:hs")
            svc.link_parent(session, parent, pupil)
            found[f"{key}parent_{tag}"] = parent
        found[f"teacher_{tag}"], found[f"director_{tag}"] = teacher, director
    session.commit()
    return found


def _access(session: Session, people: dict[str, Person], key: str) -> Access:
    return load_access(session, people[key])


def test_the_migration_matches_the_models(migrated_session: Session) -> None:
    context = MigrationContext.configure(migrated_session.connection())
    ours = ("appointment_slots", "appointment_bookings", "appointment_notices")
    diff = [d for d in compare_metadata(context, Base.metadata) if any(t in str(d) for t in ours)]
    assert diff == []


def test_an_offer_makes_slots_of_the_length_or_one_and_refuses_bad_times() -> None:
    times = service.slot_times(_form(15), NOW)
    assert len(times) == 4 and times[1] == (
        START + timedelta(minutes=15),
        START + timedelta(minutes=30),
    )
    assert service.slot_times(_form(None), NOW) == [(START, START + timedelta(hours=1))]
    for form, words in (
        (service.OfferForm(START, START, 15), "end must come after"),
        (service.OfferForm(NOW - timedelta(hours=1), NOW, 15), "in the future"),
        (_form(3), "from 5 to 120 minutes"),
        (_form(45, hours=0.5), "shorter than one slot"),
        (_form(5, hours=4), "48 slots; at most 40"),
        (_form(None, hours=3), "at most 2 hours"),
    ):
        with pytest.raises(service.AppointmentInvalid, match=words):
            service.slot_times(form, NOW)


def test_teachers_and_the_director_offer_in_their_school_only(
    migrated_session: Session, people: dict[str, Person]
) -> None:
    session = migrated_session
    school_a = next(iter(_access(session, people, "teacher_a").teacher_of_schools))
    for key in ("parent_a", "teacher_b", "director_b"):
        with pytest.raises(service.AppointmentForbidden):
            service.offer(session, school_a, _form(), viewer=_access(session, people, key), now=NOW)
    for key in ("teacher_a", "director_a"):
        slots = service.offer(
            session, school_a, _form(), viewer=_access(session, people, key), now=NOW
        )
        assert len(slots) == 4 and len({s.offer_id for s in slots}) == 1


def test_who_sees_and_books_one_parent_per_slot_one_slot_per_offer_cancel_frees(
    migrated_session: Session, people: dict[str, Person]
) -> None:
    session = migrated_session
    teacher = _access(session, people, "teacher_a")
    school_a = next(iter(teacher.teacher_of_schools))
    slots = service.offer(session, school_a, _form(), viewer=teacher, now=NOW)
    director = _access(session, people, "director_a")
    (director_slot,) = service.offer(session, school_a, _form(None), viewer=director, now=NOW)
    session.commit()

    parent = _access(session, people, "parent_a")
    other_class_parent = _access(session, people, "other_parent_a")
    stranger = _access(session, people, "parent_b")  # a parent of another school
    assert {s.id for s in service.open_slots(session, parent, NOW)} == {
        *(s.id for s in slots),
        director_slot.id,
    }
    # The class teacher's slots are for parents of pupils she teaches; the director's for all.
    assert [s.id for s in service.open_slots(session, other_class_parent, NOW)] == [
        director_slot.id
    ]
    assert service.open_slots(session, stranger, NOW) == []
    for viewer in (stranger, other_class_parent):
        with pytest.raises(service.AppointmentForbidden):
            service.book(session, slots[0], None, viewer=viewer, now=NOW)

    booking = service.book(session, slots[0], None, viewer=parent, now=NOW)
    session.commit()
    assert booking.child_id in parent.parent_of
    with pytest.raises(service.SlotTaken, match="a slot of this offer already"):
        service.book(session, slots[1], None, viewer=parent, now=NOW)
    assert slots[0].id not in {s.id for s in service.open_slots(session, parent, NOW)}
    # The director's slot is bookable by the parent of another class of the school.
    service.book(session, director_slot, None, viewer=other_class_parent, now=NOW)
    session.commit()
    # Taken by another parent: refused with a message that says so.
    with pytest.raises(service.SlotTaken):
        service.book(session, director_slot, None, viewer=parent, now=NOW)

    with pytest.raises(service.AppointmentForbidden):
        service.cancel_booking(session, booking, viewer=other_class_parent, now=NOW)
    service.cancel_booking(session, booking, viewer=parent, now=NOW)
    session.commit()
    assert slots[0].id in {s.id for s in service.open_slots(session, parent, NOW)}
    again = service.book(session, slots[0], None, viewer=parent, now=NOW)
    session.commit()

    with pytest.raises(service.AppointmentForbidden):
        service.cancel_slot(
            session, slots[0], viewer=_access(session, people, "teacher_b"), now=NOW
        )
    service.cancel_slot(session, slots[0], viewer=teacher, now=NOW)
    session.commit()
    assert again.cancelled_by == "host" and again.holds_slot is None
    with pytest.raises(service.AppointmentInvalid, match="cancelled or has begun"):
        service.book(session, slots[0], None, viewer=parent, now=NOW)
    with pytest.raises(service.AppointmentInvalid, match="cancelled or has begun"):
        service.book(session, slots[2], None, viewer=parent, now=START + timedelta(minutes=31))


def test_what_a_booking_owes_its_room(migrated_session: Session, people: dict[str, Person]) -> None:
    session = migrated_session
    teacher = _access(session, people, "teacher_a")
    school_a = next(iter(teacher.teacher_of_schools))
    (slot,) = service.offer(session, school_a, _form(None), viewer=teacher, now=NOW)
    booking = service.book(
        session, slot, None, viewer=_access(session, people, "parent_a"), now=NOW
    )
    booking.created_at = NOW
    session.commit()
    assert due(booking, slot, set(), NOW) == ["booked"]
    assert due(booking, slot, {"booked"}, NOW) == []
    assert due(booking, slot, {"booked"}, START - timedelta(hours=20)) == ["remind_day"]
    done = {"booked", "remind_day"}
    assert due(booking, slot, done, START - timedelta(minutes=10)) == ["remind_15m"]
    assert due(booking, slot, done | {"remind_15m"}, START + timedelta(minutes=5)) == []
    # Booked within the day: no day reminder; never a reminder after the start.
    booking.created_at = START - timedelta(hours=2)
    assert due(booking, slot, {"booked"}, START - timedelta(hours=1)) == []
    assert due(booking, slot, {"booked"}, START + timedelta(minutes=1)) == []
    booking.cancelled_at = NOW
    assert due(booking, slot, {"booked"}, NOW) == ["cancel"]
    assert due(booking, slot, set(), NOW) == []  # nothing was posted: nothing to take back
