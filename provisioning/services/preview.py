"""What a change would do to rooms, worked out before anyone confirms it.

The change is made in a transaction of its own that is always rolled back: the reconciler's
desired state (`build_desired`) before and after it are compared, so the preview says
exactly what the next run would do to memberships and room names, and never drifts from
the reconciler's rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from provisioning.reconciler.desired import BOT_ONLY, build_desired
from provisioning.reconciler.state import DesiredState, UserID

# Any ID works: the bot is in every room before and after, so it never shows in a preview.
_PREVIEW_BOT = UserID("@parta-preview:invalid")


@dataclass(frozen=True)
class PersonRooms:
    """The rooms one person would join and leave."""

    name: str
    joins: tuple[str, ...]
    leaves: tuple[str, ...]


@dataclass(frozen=True)
class RoomPreview:
    """What a change does on Matrix, in terms a school admin reads."""

    people: tuple[PersonRooms, ...]
    renamed_rooms: tuple[tuple[str, str], ...]  # (name before, name after)
    read_only_rooms: tuple[str, ...]  # rooms that become a read-only archive
    renamed_people: tuple[tuple[str, str], ...]

    @property
    def empty(self) -> bool:
        return not (
            self.people or self.renamed_rooms or self.read_only_rooms or self.renamed_people
        )


def preview(session: Session, change: Callable[[Session], object]) -> RoomPreview:
    """Run `change` in a scratch session of the same database, compare the desired state
    before and after, and roll it back.

    `change` gets the scratch session and must load what it changes through it. Errors it
    raises (a `DomainError`, say) propagate after the rollback.
    """
    bind = session.get_bind()
    with Session(bind=bind, autoflush=True) as scratch:
        try:
            before = build_desired(scratch, _PREVIEW_BOT)
            change(scratch)
            scratch.flush()
            after = build_desired(scratch, _PREVIEW_BOT)
        finally:
            scratch.rollback()
    return compare(before, after)


def compare(before: DesiredState, after: DesiredState) -> RoomPreview:
    """The differences between two desired states, per person and per room, sorted."""
    rooms_of: dict[UserID, tuple[set[str], set[str]]] = {}
    for alias in sorted(set(before.rooms) | set(after.rooms)):
        old, new = before.rooms.get(alias), after.rooms.get(alias)
        old_members = old.members if old else frozenset()
        new_members = new.members if new else frozenset()
        for user in new_members - old_members:
            rooms_of.setdefault(user, (set(), set()))[0].add(new.name if new else alias)
        for user in old_members - new_members:
            rooms_of.setdefault(user, (set(), set()))[1].add(old.name if old else alias)
    people = tuple(
        sorted(
            (
                PersonRooms(
                    after.users.get(user) or before.users.get(user) or str(user),
                    tuple(sorted(joins)),
                    tuple(sorted(leaves)),
                )
                for user, (joins, leaves) in rooms_of.items()
                if user != _PREVIEW_BOT
            ),
            key=lambda row: row.name,
        )
    )
    renamed = tuple(
        sorted(
            (before.rooms[alias].name, room.name)
            for alias, room in after.rooms.items()
            if alias in before.rooms and before.rooms[alias].name != room.name
        )
    )
    read_only = tuple(
        sorted(
            room.name
            for alias, room in after.rooms.items()
            if alias in before.rooms
            and room.power_levels.events_default == BOT_ONLY
            and before.rooms[alias].power_levels.events_default < BOT_ONLY
        )
    )
    renamed_people = tuple(
        sorted(
            (before.users[user], name)
            for user, name in after.users.items()
            if user in before.users and before.users[user] != name
        )
    )
    return RoomPreview(people, renamed, read_only, renamed_people)
