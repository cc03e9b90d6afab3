"""The audit log: who changed what, when and from where.

Services record what they change through `record_audit`; the web layer sets where the
request came from (`request_origin`) once per request, so no service needs an argument
for it and none can forget it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum

from sqlalchemy.orm import Session

from provisioning.db.models import AuditEvent


class AutomaticActor(StrEnum):
    """Who made a change when no person did: stored as the event's actor instead of a
    Matrix user ID, and named in words by `provisioning.web.audit_labels`."""

    SYSTEM = "system"  # Parta itself: the region's set-up, a service acting on its own
    RECONCILER = "reconciler"  # placing people in Matrix rooms
    BRIDGE = "bridge"  # the appservice in Matrix, acting for nobody in particular
    REGISTRATION_FORM = "registration-form"  # a visitor without an account yet
    COMMAND_LINE = "cli"  # `parta import` and the other commands on the server
    DEMO = "demo"  # the demo school's data


_origin: ContextVar[str | None] = ContextVar("audit_origin", default=None)


@contextmanager
def request_origin(origin: str | None) -> Iterator[None]:
    """Attribute the audit events recorded inside this block to `origin` (an IP address)."""
    token = _origin.set(origin)
    try:
        yield
    finally:
        _origin.reset(token)


def record_audit(
    session: Session,
    actor: str,
    action: str,
    subject: str,
    *,
    school_id: int | None = None,
    **details: object,
) -> None:
    """Add an audit event to the session's transaction: it commits with the change."""
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            subject=subject,
            school_id=school_id,
            details=details,
            origin=_origin.get(),
        )
    )
