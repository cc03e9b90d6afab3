"""`build_desired(session, bot)`: the Matrix state the database asks for (docs/mapping.md).

Who is in which room, who may post, and how outsiders are kept out, per room kind:
- school space: everyone of the school; people knock to join; only the bot changes it.
- announcements: everyone of the school reads; administration (100) posts (events 50).
- staff room: administration and teachers talk; invite only.
- school materials: everyone of the school reads; teachers (50) and administration post.
- school events (reports of the school's life): everyone of the school reads; class
  teachers (50) and administration post photo and video reports and articles.
- class space: pupils, their parents, the class's teachers; knock = join request.
- class chat: pupils and the class's teachers talk; invite only (parents are not in it).
- class channel: teachers (50) post; pupils and parents read; open to the class space.
- parents chat: the class teacher and parents; invite only (pupils are not in it).
In the channels (announcements, materials, events, class channel) everyone also answers polls and
reacts to posts: `ANSWER_EVENTS` at level 0.
Archived (graduated) classes keep their rooms and members, read-only.
Calls: class chats and parents chats have the call widget; a school adds it to any other
room, or keeps it out of one, in `managed_rooms.call_widget` (admin UI or `!call`).
Reads the database in a handful of bulk queries: it must scale to a whole region.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    ManagedRoom,
    ParentLink,
    Person,
    Role,
    RoleAssignment,
    RoomKind,
    School,
    SchoolClass,
    pupil_ids,
)
from provisioning.reconciler.state import (
    DOCUMENTS_WIDGET_ID,
    WIDGETS_EVENT,
    DesiredRoom,
    DesiredState,
    JoinRule,
    PowerLevels,
    RoomAlias,
    RoomWidget,
    UserID,
)

ADMIN_LEVEL = 100
TEACHER_LEVEL = 50
BOT_ONLY = 100

# State only the bot may change (defence in depth: the policy module enforces it too).
_PROTECTED_STATE = (
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.history_visibility",
    "m.room.join_rules",
    "m.room.power_levels",
    "m.room.server_acl",
    "m.room.tombstone",
    "m.space.child",
    "m.space.parent",
)
_MODERATOR_STATE = ("m.room.avatar", "m.room.name", "m.room.pinned_events", "m.room.topic")
# Answering stays open where posting is closed (issue 21): in a channel everyone answers
# polls (MSC3381: the unstable type Element Web and Element X send, and the stable one),
# reacts to posts and takes their own back (others' events need `redact`). Starting and
# ending a poll stay at `events_default`, with the posting: moderators only. The school
# policy module judges what an answer carries, so that none becomes a message; its
# `school_policy.answers.ANSWER_EVENTS` holds the same types.
ANSWER_EVENTS = (
    "m.poll.response",
    "m.reaction",
    "m.room.redaction",
    "org.matrix.msc3381.poll.response",
)

# The rooms that have a call by default, and what their call is for.
_DEFAULT_CALLS = {
    RoomKind.CLASS_CHAT.value: "Урок",
    RoomKind.CLASS_PARENTS.value: "Родительское собрание",
}
CALL_NAME = "Звонок"  # a call a school or a teacher added to any other room
# The rooms that show their files in the documents widget: the school's materials, the
# class's chat and its materials (the channel), and the staff room's.
_DOCUMENTS_ROOMS = frozenset(
    {
        RoomKind.SCHOOL_MATERIALS.value,
        RoomKind.CLASS_CHAT.value,
        RoomKind.CLASS_CHANNEL.value,
        RoomKind.STAFF_ROOM.value,
    }
)
DOCUMENTS_NAME = "Материалы"


def has_call_by_default(kind: str) -> bool:
    return kind in _DEFAULT_CALLS


def call_name(kind: str) -> str:
    """The call widget's name in a room of this kind, unless someone named it."""
    return _DEFAULT_CALLS.get(kind, CALL_NAME)


def school_alias(slug: str, suffix: str = "") -> RoomAlias:
    return RoomAlias(f"school-{slug}{'-' + suffix if suffix else ''}")


def class_key(school_class: SchoolClass) -> str:
    """Stable across promotions and renames: "2032a" (`SchoolClass.alias_key`)."""
    return school_class.alias_key


def _power(
    bot: UserID,
    levels: dict[UserID, int],
    *,
    events_default: int,
    moderators_manage: bool = True,
    moderators_add_rooms: bool = False,
    answers_open: bool = False,
) -> PowerLevels:
    # Room version 12: the creating bot has unlimited power and must not be listed in users.
    users = {u: level for u, level in levels.items() if u != bot}
    events = dict.fromkeys(_PROTECTED_STATE, BOT_ONLY)
    if answers_open:
        events.update(dict.fromkeys(ANSWER_EVENTS, 0))  # a channel: everyone answers
    for event_type in _MODERATOR_STATE:
        events[event_type] = TEACHER_LEVEL if moderators_manage else BOT_ONLY
    if moderators_add_rooms:
        # A class's teachers put their own rooms into the class space (a parent committee's
        # room, say); the school policy module checks that they are the school's staff.
        events["m.space.child"] = TEACHER_LEVEL
    events[WIDGETS_EVENT] = TEACHER_LEVEL  # teachers add calls and documents to rooms
    return PowerLevels(
        users=tuple(sorted(users.items())),
        events_default=events_default,
        state_default=BOT_ONLY,
        invite=TEACHER_LEVEL,
        kick=TEACHER_LEVEL,
        ban=TEACHER_LEVEL,
        redact=TEACHER_LEVEL,
        events=tuple(sorted(events.items())),
    )


@dataclass
class _ClassPeople:
    pupils: set[UserID]
    class_teachers: set[UserID]
    subject_teachers: set[UserID]
    parents: set[UserID]

    @property
    def teachers(self) -> set[UserID]:
        return self.class_teachers | self.subject_teachers


def build_desired(
    session: Session,
    bot: UserID,
    *,
    call_widget_url: str | None = None,
    documents_widget_url: str | None = None,
) -> DesiredState:
    """Compute every managed room and account the database asks for.

    `call_widget_url` is the call widget's URL template (`Settings.call_widget_url`):
    class chats get it for lessons and parents chats for meetings. `documents_widget_url`
    (`Settings.documents_widget_url`) goes into class chats, class channels and the staff
    room, for the files shared there.
    """
    mxid: dict[int, UserID] = {}
    users: dict[UserID, str] = {}
    for person_id, user_id, name in session.execute(
        select(Person.id, Person.matrix_user_id, Person.display_name).where(
            Person.matrix_user_id.is_not(None)
        )
    ):
        mxid[person_id] = UserID(str(user_id))
        users[UserID(str(user_id))] = name

    school_admins: dict[int, set[UserID]] = defaultdict(set)
    school_teachers: dict[int, set[UserID]] = defaultdict(set)
    for person_id, role, school_id in session.execute(
        select(RoleAssignment.person_id, RoleAssignment.role, RoleAssignment.school_id).where(
            RoleAssignment.school_id.is_not(None)
        )
    ):
        if person_id not in mxid or school_id is None:
            continue
        if role is Role.SCHOOL_ADMIN:
            school_admins[school_id].add(mxid[person_id])
        elif role is Role.TEACHER:
            school_teachers[school_id].add(mxid[person_id])

    children_of: dict[int, list[int]] = defaultdict(list)
    families: list[tuple[int, int]] = []  # (parent, child) who asked for a family room
    for parent_id, child_id, confirmed_at in session.execute(
        select(ParentLink.parent_id, ParentLink.child_id, ParentLink.confirmed_at).where(
            ParentLink.parent_id.not_in(pupil_ids())  # a pupil is nobody's parent (issue 18)
        )
    ):
        children_of[child_id].append(parent_id)
        if confirmed_at is not None:
            families.append((parent_id, child_id))

    class_people: dict[int, _ClassPeople] = defaultdict(
        lambda: _ClassPeople(set(), set(), set(), set())
    )
    placed_pupils: set[int] = set()
    for person_id, class_id, place, confirmed_at in session.execute(
        select(Enrolment.person_id, Enrolment.class_id, Enrolment.role, Enrolment.confirmed_at)
    ):
        people = class_people[class_id]
        if person_id not in mxid:
            continue
        if place is EnrolmentRole.PUPIL:
            if confirmed_at is None:
                continue  # waits for a parent or the administration to confirm them
            placed_pupils.add(person_id)
            people.pupils.add(mxid[person_id])
            people.parents.update(mxid[p] for p in children_of.get(person_id, ()) if p in mxid)
        elif place is EnrolmentRole.CLASS_TEACHER:
            people.class_teachers.add(mxid[person_id])
        else:
            people.subject_teachers.add(mxid[person_id])

    classes_of: dict[int, list[SchoolClass]] = defaultdict(list)
    for school_class in session.scalars(select(SchoolClass)):
        classes_of[school_class.school_id].append(school_class)

    rooms: dict[RoomAlias, DesiredRoom] = {}
    for school in session.scalars(select(School).order_by(School.id)):
        admins = school_admins.get(school.id, set())
        classes = sorted(classes_of.get(school.id, []), key=lambda c: (c.grade, c.letter))
        teachers = set(school_teachers.get(school.id, set()))
        class_teachers: set[UserID] = set()
        everyone = set(admins)
        for school_class in classes:
            if school_class.archived_at is None:
                people = class_people[school_class.id]
                teachers |= people.teachers
                class_teachers |= people.class_teachers
                everyone |= people.pupils | people.parents
        everyone |= teachers
        rooms.update(_school_rooms(school, bot, admins, teachers, class_teachers, everyone))
        for school_class in classes:
            people = class_people[school_class.id]
            rooms.update(_class_rooms(school, school_class, bot, admins, people, call_widget_url))
    for parent_id, child_id in families:
        if parent_id in mxid and child_id in placed_pupils:
            room = _family_room(bot, mxid[parent_id], users, mxid[child_id], parent_id, child_id)
            rooms[room.alias] = room
    for alias in session.scalars(select(ManagedRoom.alias).where(ManagedRoom.federated)):
        if RoomAlias(alias) in rooms:
            rooms[RoomAlias(alias)] = replace(rooms[RoomAlias(alias)], federated=True)
    _apply_call_choices(session, rooms, call_widget_url)
    if documents_widget_url:
        archived = {c.id for cs in classes_of.values() for c in cs if c.archived_at is not None}
        widget = RoomWidget(documents_widget_url, DOCUMENTS_NAME, DOCUMENTS_WIDGET_ID)
        for alias, room in rooms.items():
            # A graduated class's rooms keep their files but are read-only: no widget.
            if room.kind in _DOCUMENTS_ROOMS and room.class_id not in archived:
                rooms[alias] = replace(room, documents_widget=widget)
    return DesiredState(bot=bot, users=users, rooms=rooms)


def _apply_call_choices(
    session: Session, rooms: dict[RoomAlias, DesiredRoom], call_widget_url: str | None
) -> None:
    """Add or take out the call widget where the school chose to, beyond the defaults."""
    for alias, wanted, name, archived_at in session.execute(
        select(
            ManagedRoom.alias,
            ManagedRoom.call_widget,
            ManagedRoom.call_widget_name,
            SchoolClass.archived_at,
        )
        .outerjoin(SchoolClass, SchoolClass.id == ManagedRoom.class_id)
        .where(ManagedRoom.call_widget.is_not(None))
    ):
        room = rooms.get(RoomAlias(alias))
        if room is None or room.is_space:
            continue  # a space shows no widgets
        # A graduated class's rooms are read-only: no more calls there, whatever was chosen.
        widget = (
            RoomWidget(call_widget_url, name or call_name(room.kind))
            if wanted and call_widget_url and archived_at is None
            else None
        )
        rooms[room.alias] = replace(room, call_widget=widget)


def family_alias(parent_id: int, child_id: int) -> RoomAlias:
    return RoomAlias(f"family-{parent_id}-{child_id}")


def _family_room(
    bot: UserID,
    parent: UserID,
    names: dict[UserID, str],
    child: UserID,
    parent_id: int,
    child_id: int,
) -> DesiredRoom:
    """A private room for a parent and their child: to write and call each other."""
    return DesiredRoom(
        kind=RoomKind.FAMILY.value,
        alias=family_alias(parent_id, child_id),
        is_space=False,
        name=f"{names.get(parent, parent)} и {names.get(child, child)}",
        topic="Семейный чат: родитель и ребёнок",
        join_rule=JoinRule("invite"),
        power_levels=_power(bot, {}, events_default=0),
        members=frozenset({bot, parent, child}),
    )


def _school_rooms(
    school: School,
    bot: UserID,
    admins: set[UserID],
    teachers: set[UserID],
    class_teachers: set[UserID],
    everyone: set[UserID],
) -> dict[RoomAlias, DesiredRoom]:
    space = school_alias(school.slug)
    admin_levels = dict.fromkeys(admins, ADMIN_LEVEL)
    members = frozenset(everyone | {bot})
    rooms = [
        DesiredRoom(
            kind=RoomKind.SCHOOL_SPACE.value,
            school_id=school.id,
            alias=space,
            is_space=True,
            name=school.name,
            topic=f"Сообщество школы «{school.name}»: объявления, учительская и классы",
            join_rule=JoinRule("knock"),
            power_levels=_power(bot, admin_levels, events_default=BOT_ONLY),
            members=members,
        ),
        DesiredRoom(
            kind=RoomKind.ANNOUNCEMENTS.value,
            school_id=school.id,
            alias=school_alias(school.slug, "announcements"),
            is_space=False,
            name="Объявления школы",
            topic=f"Новости и объявления администрации: {school.name}",
            join_rule=JoinRule("restricted", (space,)),
            power_levels=_power(bot, admin_levels, events_default=TEACHER_LEVEL, answers_open=True),
            members=members,
            parent=space,
        ),
        DesiredRoom(
            # Staff (teachers 50, administration 100) post the school's materials; everyone
            # of the school reads them. The policy module refuses anyone else's posts.
            kind=RoomKind.SCHOOL_MATERIALS.value,
            school_id=school.id,
            alias=school_alias(school.slug, "materials"),
            is_space=False,
            name="Материалы школы",
            topic=f"Учебные материалы учителей и администрации: {school.name}",
            join_rule=JoinRule("restricted", (space,)),
            power_levels=_power(
                bot,
                {**dict.fromkeys(teachers, TEACHER_LEVEL), **admin_levels},
                events_default=TEACHER_LEVEL,
                answers_open=True,
            ),
            members=members,
            parent=space,
        ),
        DesiredRoom(
            # Reports of the school's life (themed days, the last bell): class teachers (50)
            # and the administration post photos, videos and articles; everyone of the
            # school reads. The policy module refuses anyone else's posts.
            kind=RoomKind.SCHOOL_EVENTS.value,
            school_id=school.id,
            alias=school_alias(school.slug, "events"),
            is_space=False,
            name="События школы",
            topic=f"Фото- и видеоотчёты классов и статьи о жизни школы: {school.name}",
            join_rule=JoinRule("restricted", (space,)),
            power_levels=_power(
                bot,
                {**dict.fromkeys(class_teachers, TEACHER_LEVEL), **admin_levels},
                events_default=TEACHER_LEVEL,
                answers_open=True,
            ),
            members=members,
            parent=space,
        ),
        DesiredRoom(
            kind=RoomKind.STAFF_ROOM.value,
            school_id=school.id,
            alias=school_alias(school.slug, "staff"),
            is_space=False,
            name="Учительская",
            topic="Общение учителей и администрации школы",
            join_rule=JoinRule("invite"),
            power_levels=_power(bot, admin_levels, events_default=0),
            members=frozenset(admins | teachers | {bot}),
            parent=space,
        ),
    ]
    return {room.alias: room for room in rooms}


def _class_rooms(
    school: School,
    school_class: SchoolClass,
    bot: UserID,
    admins: set[UserID],
    people: _ClassPeople,
    call_widget_url: str | None,
) -> dict[RoomAlias, DesiredRoom]:
    key = class_key(school_class)
    space = school_alias(school.slug, key)
    archived = school_class.archived_at is not None
    label = school_class.label
    title = f"{label} класс" if not archived else f"Выпуск {school_class.graduation_year}, {label}"
    note = " (архив)" if archived else ""
    levels = {
        **dict.fromkeys(people.teachers, TEACHER_LEVEL),
        **dict.fromkeys(admins, ADMIN_LEVEL),
    }

    def power(events_default: int, *, space: bool = False, channel: bool = False) -> PowerLevels:
        # A graduated class is read-only for everyone but the bot: no answers either.
        if archived:
            return _power(bot, {}, events_default=BOT_ONLY, moderators_manage=False)
        return _power(
            bot,
            levels,
            events_default=events_default,
            moderators_add_rooms=space,
            answers_open=channel,
        )

    class_members = people.pupils | people.teachers | people.parents

    def call(kind: RoomKind) -> RoomWidget | None:
        # A graduated class's rooms are read-only: no more lessons or meetings there.
        if not call_widget_url or archived:
            return None
        return RoomWidget(call_widget_url, call_name(kind.value))

    rooms = [
        DesiredRoom(
            kind=RoomKind.CLASS_SPACE.value,
            school_id=school.id,
            class_id=school_class.id,
            alias=space,
            is_space=True,
            name=title + note,
            topic=f"{title}, {school.name}",
            join_rule=JoinRule("invite" if archived else "knock"),
            power_levels=power(BOT_ONLY, space=True),
            members=frozenset(class_members | {bot}),
            parent=school_alias(school.slug),
        ),
        DesiredRoom(
            kind=RoomKind.CLASS_CHAT.value,
            school_id=school.id,
            class_id=school_class.id,
            alias=RoomAlias(f"{space}-chat"),
            is_space=False,
            name=f"{label} — чат класса{note}",
            topic=f"Ученики и учителя {label} класса",
            join_rule=JoinRule("invite"),
            power_levels=power(0),
            members=frozenset(people.pupils | people.teachers | {bot}),
            parent=space,
            call_widget=call(RoomKind.CLASS_CHAT),
        ),
        DesiredRoom(
            kind=RoomKind.CLASS_CHANNEL.value,
            school_id=school.id,
            class_id=school_class.id,
            alias=RoomAlias(f"{space}-channel"),
            is_space=False,
            name=f"{label} — канал класса{note}",
            topic=f"Объявления учителей для учеников и родителей {label} класса",
            join_rule=JoinRule(
                "invite" if archived else "restricted", () if archived else (space,)
            ),
            power_levels=power(TEACHER_LEVEL, channel=True),
            members=frozenset(class_members | {bot}),
            parent=space,
        ),
        DesiredRoom(
            kind=RoomKind.CLASS_PARENTS.value,
            school_id=school.id,
            class_id=school_class.id,
            alias=RoomAlias(f"{space}-parents"),
            is_space=False,
            name=f"{label} — родители{note}",
            topic=f"Классный руководитель и родители {label} класса",
            join_rule=JoinRule("invite"),
            power_levels=power(0),
            members=frozenset(people.class_teachers | people.parents | {bot}),
            parent=space,
            call_widget=call(RoomKind.CLASS_PARENTS),
        ),
    ]
    return {room.alias: room for room in rooms}
