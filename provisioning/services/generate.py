"""Generated schools with Russian names: the demo school, benchmarks and tests.

Proportions follow a real school: about one class per 25 pupils, one teacher per 12
pupils, and 1.5 parents per pupil (some pupils have one parent in Parta, some two).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from provisioning.db.models import EnrolmentRole, Person, Region, Role, School, SchoolClass
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator

_MALE = ["Иван", "Алексей", "Дмитрий", "Максим", "Артём", "Михаил", "Никита", "Егор", "Кирилл"]
_FEMALE = ["Анна", "Мария", "Софья", "Дарья", "Полина", "Алиса", "Ксения", "Вера", "Ева"]
# Adults get names of their generation, so a mother and her daughter do not share one.
_ADULT_MALE = ["Сергей", "Андрей", "Александр", "Владимир", "Игорь", "Олег", "Павел"]
_ADULT_FEMALE = ["Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Светлана", "Марина"]
_SURNAMES = [
    "Иванов", "Петров", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов",
    "Новиков", "Морозов", "Волков", "Фёдоров", "Орлов", "Зайцев", "Соловьёв", "Егоров",
]  # fmt: skip
_SUBJECTS = ["Математика", "Русский язык", "Литература", "История", "Физика", "Биология"]
_LETTERS = "АБВГДЕ"


def _full_name(
    rng: random.Random, female: bool, surname: str | None = None, *, adult: bool = False
) -> str:
    surname = surname or rng.choice(_SURNAMES)
    if female:
        return f"{rng.choice(_ADULT_FEMALE if adult else _FEMALE)} {surname}а"
    return f"{rng.choice(_ADULT_MALE if adult else _MALE)} {surname}"


@dataclass
class GeneratedSchool:
    school: School
    classes: list[SchoolClass]
    admins: list[Person] = field(default_factory=list)
    teachers: list[Person] = field(default_factory=list)
    pupils: list[Person] = field(default_factory=list)
    parents: list[Person] = field(default_factory=list)


def generate_school(
    session: Session,
    region: Region,
    name: str,
    *,
    pupils: int,
    academic_year: int,
    seed: int = 0,
    slug: str | None = None,
    classes: int | None = None,
) -> GeneratedSchool:
    """Add a school of about `pupils` pupils with classes, teachers and parents (one commit)."""
    rng = random.Random(seed)
    ids = LocalpartAllocator(session, region.server_name)
    school = svc.create_school(session, region, name, academic_year=academic_year, slug=slug)
    class_count = classes or max(1, round(pupils / 25))
    grades = list(range(1, school.last_grade + 1))
    school_classes = [
        svc.add_class(session, school, grades[i % len(grades)], _LETTERS[i // len(grades)])
        for i in range(class_count)
    ]
    made = GeneratedSchool(school, school_classes)

    def person(display_name: str) -> Person:
        return svc.add_person(session, display_name, ids.user_id(display_name))

    director = person(_full_name(rng, female=True, adult=True))
    svc.grant_school_role(session, director, school, Role.SCHOOL_ADMIN)
    made.admins.append(director)
    subjects = [svc.add_subject(session, school, s) for s in _SUBJECTS]
    for index in range(max(class_count, round(pupils / 12))):
        teacher = person(_full_name(rng, female=rng.random() < 0.8, adult=True))
        svc.grant_school_role(session, teacher, school, Role.TEACHER)
        made.teachers.append(teacher)
        if index < class_count:
            svc.enrol(session, teacher, school_classes[index], EnrolmentRole.CLASS_TEACHER)
        subject = subjects[index % len(subjects)]
        for school_class in rng.sample(school_classes, k=min(class_count, 3)):
            svc.enrol(
                session, teacher, school_class, EnrolmentRole.SUBJECT_TEACHER, subject=subject
            )
    for index in range(pupils):
        surname = rng.choice(_SURNAMES)
        pupil = person(_full_name(rng, female=rng.random() < 0.5, surname=surname))
        svc.enrol(session, pupil, school_classes[index % class_count], EnrolmentRole.PUPIL)
        made.pupils.append(pupil)
        for parent_index in range(2 if index % 2 else 1):
            parent = person(_full_name(rng, female=parent_index == 0, surname=surname, adult=True))
            svc.link_parent(session, parent, pupil)
            made.parents.append(parent)
    session.commit()
    return made
