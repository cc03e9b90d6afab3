"""Readable Matrix user IDs for the people Parta records."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.naming import slugify
from provisioning.db.models import Person

# The bot's namespace (@parta, @parta-*, and the bootstrap's @parta_setup_*) and the region
# admin are never given to a person.
_RESERVED = re.compile(r"^(parta([-_].*)?|admin)$")


class LocalpartAllocator:
    """Readable unique localparts from names: "Иван Петров" → "ivan.petrov", "ivan.petrov2"."""

    def __init__(self, session: Session, server_name: str) -> None:
        self.server_name = server_name
        self.taken = {
            str(u).split(":", 1)[0][1:]
            for u in session.scalars(select(Person.matrix_user_id)).all()
            if u
        }

    def user_id(self, display_name: str) -> str:
        base = slugify(display_name).replace("-", ".") or "user"
        candidate, number = base, 1
        while candidate in self.taken or _RESERVED.match(candidate):
            number += 1
            candidate = f"{base}{number}"
        self.taken.add(candidate)
        return f"@{candidate}:{self.server_name}"
