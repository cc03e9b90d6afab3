"""A school's rooms page: opening a room to other regions, in a real browser."""

from __future__ import annotations

import json
import re
import secrets

from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select

from parta.deployment import LocalDeployment
from provisioning.db.models import ManagedRoom, RoomKind
from tests.harness.waiting import wait_until
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import db_session, region_admin_page


def _wait_for_rooms(region: LocalDeployment, school_id: int, count: int) -> None:
    with db_session(region) as session:

        def created() -> list[str | None] | None:
            session.rollback()  # see what the service's reconciler committed since
            ids = session.scalars(
                select(ManagedRoom.room_id).where(ManagedRoom.school_id == school_id)
            ).all()
            return list(ids) if len(ids) == count and all(ids) else None

        wait_until(created, f"the school's {count} rooms", within=120)


def _snapshot_says(region: LocalDeployment, room_id: str) -> bool | None:
    """Whether the policy snapshot holds the room open; None while it does not know the
    room yet (the reconciler run that adds it may still be going on a busy machine)."""
    text = region.settings.policy_snapshot_path.read_text(encoding="utf-8")
    room = json.loads(text).get("rooms", {}).get(room_id)
    return None if room is None else bool(room["federated"])


def _wait_for_snapshot(region: LocalDeployment, room_id: str, open_: bool) -> None:
    wait_until(
        lambda: _snapshot_says(region, room_id) is open_,
        f"the policy snapshot to say the room is {'open' if open_ else 'closed'}",
    )


def test_a_school_admin_opens_a_room_to_other_regions_and_closes_it(
    region: LocalDeployment, context: BrowserContext
) -> None:
    s = region.settings
    page = region_admin_page(region, context)
    tag = secrets.token_hex(3)
    page.click("nav.main-nav >> text=Школы")
    page.fill("input[name=name]", f"Лицей {tag}")
    page.fill("input[name=slug]", f"lic-{tag}")
    page.click("text=Добавить школу >> nth=-1")
    page.fill("input[name=label]", "7В")
    page.click("text=Добавить класс")
    expect(page.locator("#classes table")).to_contain_text("7В")
    school_url = page.url
    school_id = int(school_url.rsplit("/", 1)[1])
    _wait_for_rooms(region, school_id, 9)  # 5 of the school, 4 of the class

    page.click("text=Комнаты и другие регионы")
    expect(page.locator("h1")).to_have_text("Комнаты и другие регионы")
    # This region federates with nobody: the page says so instead of promising guests.
    expect(page.locator(".error")).to_contain_text("PARTA_FEDERATION_ALLOW_LIST")
    rows = page.locator("table.rooms tbody tr")
    expect(rows).to_have_count(9)
    expect(rows.first).to_contain_text("Пространство школы")
    expect(rows.nth(2)).to_contain_text("Материалы школы")
    expect(rows.nth(3)).to_contain_text("События школы")
    expect(rows.nth(8)).to_contain_text("Чат родителей класса 7В")
    staff_alias = f"school-lic-{tag}-staff"
    staff = page.locator(f"#room-{staff_alias}")
    expect(staff).to_contain_text(f"#{staff_alias}:{s.server_name}")
    expect(staff.locator(".federation")).to_have_text("закрыта")

    staff.locator("text=Открыть для других регионов").click()
    expect(page).to_have_url(re.compile(rf"/schools/{school_id}/rooms#room-{staff_alias}$"))
    expect(page.locator(f"#room-{staff_alias} .federation")).to_have_text("открыта")
    screenshot(page, "ru-rooms")
    with db_session(region) as session:
        staff_room = session.get(ManagedRoom, staff_alias)
        assert staff_room is not None and staff_room.federated
        assert staff_room.room_id is not None
        others = session.scalars(
            select(ManagedRoom).where(
                ManagedRoom.school_id == school_id, ManagedRoom.alias != staff_alias
            )
        ).all()
        assert not any(room.federated for room in others)
        staff_room_id = staff_room.room_id
    # The reconciler run the change asked for tells Synapse's policy module.
    _wait_for_snapshot(region, staff_room_id, True)
    page.goto(f"{school_url}/audit")
    expect(page.locator("table")).to_contain_text("Открыта для других регионов: Учительская")

    page.goto(f"{school_url}/rooms")
    page.locator(f"#room-{staff_alias} >> text=Закрыть для других регионов").click()
    expect(page.locator(f"#room-{staff_alias} .federation")).to_have_text("закрыта")
    _wait_for_snapshot(region, staff_room_id, False)

    page.click("text=English")
    expect(page.locator("h1")).to_have_text("Rooms and other regions")
    expect(page.locator(f"#room-{staff_alias}")).to_contain_text("Staff room")
    screenshot(page, "en-rooms")

    # A room the school does not have is a clear 404, not a silent success.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    missing = page.request.post(
        f"{school_url}/rooms/school-nowhere-staff/federation",
        form={"federated": "yes", "csrf_token": token},
    )
    assert missing.status == 404
    bad = page.request.post(
        f"{school_url}/rooms/{staff_alias}/federation",
        form={"federated": "maybe", "csrf_token": token},
    )
    assert bad.status in (400, 422)
    with db_session(region) as session:
        staff_room = session.get(ManagedRoom, staff_alias)
        assert staff_room is not None and not staff_room.federated
        assert staff_room.kind is RoomKind.STAFF_ROOM
