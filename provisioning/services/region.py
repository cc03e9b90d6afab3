"""The region row and its first administrator."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.settings import Settings
from matrix.accounts import ensure_local_user
from matrix.client import MatrixClient
from provisioning.db.models import AuditEvent, Person, Region, Role, RoleAssignment

REGION_ADMIN_DISPLAY_NAME = "Администратор региона"


def ensure_region(session: Session, settings: Settings) -> Region:
    """Return the deployment's region, creating it from the settings the first time."""
    region = session.scalar(select(Region).where(Region.server_name == settings.server_name))
    if region is None:
        region = Region(server_name=settings.server_name, name=settings.region_name)
        session.add(region)
        session.add(
            AuditEvent(actor="system", action="region.created", subject=settings.server_name)
        )
    elif region.name != settings.region_name:
        region.name = settings.region_name
    session.commit()
    return region


async def ensure_region_admin(session: Session, client: MatrixClient, settings: Settings) -> bool:
    """Ensure the region admin's Matrix account and their record; True when created now."""
    user_id = settings.region_admin_user_id
    created = await ensure_local_user(
        client,
        user_id,
        display_name=REGION_ADMIN_DISPLAY_NAME,
        password=settings.region_admin_password.get_secret_value(),
    )
    region = ensure_region(session, settings)
    person = session.scalar(select(Person).where(Person.matrix_user_id == user_id))
    if person is None:
        person = Person(display_name=REGION_ADMIN_DISPLAY_NAME, matrix_user_id=user_id)
        session.add(person)
    has_role = any(r.role is Role.REGION_ADMIN and r.region_id == region.id for r in person.roles)
    if not has_role:
        person.roles.append(RoleAssignment(role=Role.REGION_ADMIN, region_id=region.id))
        session.add(
            AuditEvent(
                actor="system",
                action="role.granted",
                subject=user_id,
                details={"role": Role.REGION_ADMIN.value, "region": settings.server_name},
            )
        )
    session.commit()
    return created
