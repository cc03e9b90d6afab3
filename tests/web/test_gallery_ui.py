"""The school's and a class's galleries of photo and video reports, in a real browser.

Reports are posted the way people post them, in Matrix (matrix-nio, as the people
themselves) into «События школы» and a class channel; the admin UI reads them back from
the real Synapse and serves the thumbnails through its checked proxy, each file's address
carrying a ticket signed for the viewer when the page was made.
"""

from __future__ import annotations

import io
import json
import secrets
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from nio import AsyncClient, UploadResponse
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from matrix import media, rooms
from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.models import EnrolmentRole, ManagedRoom, Region, Role, RoomKind
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from provisioning.services.media_tickets import MediaTickets, key_from
from tests.matrix_users import logged_in
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import (
    PASSWORD,
    _set_password,
    db_session,
    run_async,
    run_async_value,
    sign_in,
)
from tests.web.test_school_year_ui import reconcile_now


@dataclass(frozen=True)
class Setup:
    school: int
    other_school: int
    a5: int
    b6: int
    users: dict[str, str]  # key → Matrix user ID (password PASSWORD)
    events_room: str
    channel_5a: str


def _png(colour: str, size: tuple[int, int] = (1200, 800)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


async def _post(
    region: LocalDeployment,
    user_id: str,
    room_id: str,
    *,
    data: bytes,
    mimetype: str,
    msgtype: str,
    uploaded_as: str | None = None,
    caption: str,
    filename: str,
) -> str:
    async with logged_in(region, user_id, PASSWORD) as client:
        uploaded, _ = await client.upload(
            io.BytesIO(data),
            content_type=uploaded_as or mimetype,
            filename=filename,
            filesize=len(data),
        )
        assert isinstance(uploaded, UploadResponse), uploaded
        content = {
            "msgtype": msgtype, "body": caption, "filename": filename,
            "url": uploaded.content_uri, "info": {"mimetype": mimetype, "size": len(data)},
        }  # fmt: skip
        return await _send(client, room_id, content)


async def _send(client: AsyncClient, room_id: str, content: dict[str, object]) -> str:
    answer = await client.room_send(room_id, "m.room.message", content)
    event_id = getattr(answer, "event_id", None)
    assert event_id, answer
    return str(event_id)


def _wait_for_rooms(
    region: LocalDeployment, school_id: int, class_id: int, users: dict[str, str]
) -> tuple[str, str]:
    """The events room and 5А's channel, once the people who post and read are in them."""
    in_events = {users[k] for k in ("olga", "director", "ivan", "anna", "petya")}
    in_channel = {users[k] for k in ("subject", "ivan", "anna")}
    deadline = time.monotonic() + 180
    while True:
        with db_session(region) as session:
            events = session.scalar(
                select(ManagedRoom).where(
                    ManagedRoom.kind == RoomKind.SCHOOL_EVENTS, ManagedRoom.school_id == school_id
                )
            )
            channel = session.scalar(
                select(ManagedRoom).where(
                    ManagedRoom.kind == RoomKind.CLASS_CHANNEL, ManagedRoom.class_id == class_id
                )
            )
            placed = [
                room.room_id
                for room, wanted in ((events, in_events), (channel, in_channel))
                if room is not None
                and room.room_id
                and wanted <= set((room.applied or {}).get("members", ()))
            ]
        if len(placed) == 2:
            return placed[0], placed[1]
        assert time.monotonic() < deadline, "the reconciler did not make the school's rooms"
        time.sleep(1)


@pytest.fixture(scope="module")
def setup(region: LocalDeployment) -> Setup:
    """A school with 5А (class teacher Olga, a subject teacher, pupil Ivan and his mother)
    and 6Б (pupil Petya); a teacher of another school."""
    tag = secrets.token_hex(3)
    names = {
        "director": "Светлана Директор", "olga": "Ольга Классная", "subject": "Пётр Физик",
        "ivan": "Иван Ученик", "anna": "Анна Мама", "petya": "Петя Шестиклассник",
        "stranger": "Учитель Другой Школы",
    }  # fmt: skip
    with db_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        school = svc.create_school(session, region_row, f"Галерея {tag}", slug=f"g-{tag}",
                                   academic_year=2026)  # fmt: skip
        other = svc.create_school(session, region_row, f"Другая {tag}", slug=f"go-{tag}",
                                  academic_year=2026)  # fmt: skip
        a5, b6 = svc.add_class(session, school, 5, "А"), svc.add_class(session, school, 6, "Б")
        c7 = svc.add_class(session, other, 7, "В")
        allocator = LocalpartAllocator(session, region.settings.server_name)
        people = {}
        for key, name in names.items():
            people[key] = svc.add_person(session, f"{name} {tag}", allocator.user_id(name))
        svc.grant_school_role(session, people["director"], school, Role.SCHOOL_ADMIN)
        for teacher in ("olga", "subject"):
            svc.grant_school_role(session, people[teacher], school, Role.TEACHER)
        svc.enrol(session, people["olga"], a5, EnrolmentRole.CLASS_TEACHER)
        svc.enrol(session, people["subject"], a5, EnrolmentRole.SUBJECT_TEACHER,
                  subject=svc.add_subject(session, school, "Физика"))  # fmt: skip
        svc.enrol(session, people["ivan"], a5, EnrolmentRole.PUPIL)
        svc.enrol(session, people["petya"], b6, EnrolmentRole.PUPIL)
        svc.link_parent(session, people["anna"], people["ivan"])
        svc.grant_school_role(session, people["stranger"], other, Role.TEACHER)
        svc.enrol(session, people["stranger"], c7, EnrolmentRole.CLASS_TEACHER)
        session.commit()
        users = {key: str(person.matrix_user_id) for key, person in people.items()}
        ids = (school.id, other.id, a5.id, b6.id)
    for key, user_id in users.items():
        run_async(_set_password(region, user_id, names[key]))
    reconcile_now(region)
    events_room, channel = _wait_for_rooms(region, ids[0], ids[2], users)
    return Setup(*ids, users=users, events_room=events_room, channel_5a=channel)


def _page(region: LocalDeployment, browser: Browser, setup: Setup, who: str) -> Page:
    """A page of its own browser profile, signed in as `who`, on the dashboard."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ru-RU")
    context.set_default_timeout(20_000)
    page = context.new_page()
    localpart = setup.users[who].removeprefix("@").split(":")[0]
    sign_in(page, region.settings.provisioning_url, localpart, PASSWORD)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    return page


def _thumbnails_loaded(page: Page) -> int:
    return int(
        page.evaluate(
            "() => [...document.querySelectorAll('ul.gallery img')]"
            ".filter(i => i.complete && i.naturalWidth > 0).length"
        )
    )


def test_everyone_of_the_school_sees_its_reports_and_a_class_sees_its_own(
    region: LocalDeployment, browser: Browser, setup: Setup
) -> None:
    base = region.settings.provisioning_url
    posts = [
        ("olga", setup.events_room, "#2e7d32", "Последний звонок в 5А"),
        ("director", setup.events_room, "#1565c0", "День знаний: линейка"),
        ("subject", setup.channel_5a, "#c62828", "Опыт с магнитами"),
    ]
    for who, room, colour, caption in posts:
        run_async_value(
            _post(region, setup.users[who], room, data=_png(colour), mimetype="image/png",
                  msgtype="m.image", caption=caption, filename="photo.png")
        )  # fmt: skip

    # A pupil of another class reads the school's events: both reports, newest first.
    petya = _page(region, browser, setup, "petya")
    petya.click("text=События школы")
    expect(petya.locator("h1")).to_have_text("События школы")
    reports = petya.locator("ul.gallery li.report")
    expect(reports).to_have_count(2)
    expect(reports.nth(0)).to_contain_text("День знаний: линейка")
    expect(reports.nth(0)).to_contain_text("Светлана Директор")
    expect(reports.nth(1)).to_contain_text("Последний звонок в 5А")
    petya.wait_for_function(
        "() => [...document.querySelectorAll('ul.gallery img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert _thumbnails_loaded(petya) == 2
    screenshot(petya, "gallery-school")
    # …but not 5А's own page.
    answer = petya.goto(f"{base}/schools/{setup.school}/classes/{setup.a5}/gallery")
    assert answer is not None and answer.status == 403

    # Ivan's mother sees 5А's reports: the class teacher's and the channel's, not the
    # director's.
    anna = _page(region, browser, setup, "anna")
    anna.click("text=Отчёты класса")
    expect(anna.locator("h1")).to_have_text("Отчёты 5А класса")
    class_reports = anna.locator("ul.gallery li.report")
    expect(class_reports).to_have_count(2)
    expect(class_reports.nth(0)).to_contain_text("Опыт с магнитами")
    expect(class_reports.nth(1)).to_contain_text("Последний звонок в 5А")
    expect(anna.locator("ul.gallery")).not_to_contain_text("День знаний")

    # The school's staff reach both from the school's and the class's pages.
    director = _page(region, browser, setup, "director")
    director.goto(f"{base}/schools/{setup.school}/classes/{setup.a5}")
    director.click("text=Отчёты класса")
    expect(director.locator("ul.gallery li.report")).to_have_count(2)


def test_files_reach_only_the_people_of_the_school_and_never_run_as_pages(
    region: LocalDeployment, browser: Browser, setup: Setup
) -> None:
    base = region.settings.provisioning_url
    # A file posted as a photo that is really a page (a client can claim anything).
    page_html = b"<html><script>alert(document.cookie)</script></html>"
    trap = run_async_value(
        _post(region, setup.users["olga"], setup.events_room, data=page_html,
              mimetype="image/png", uploaded_as="text/html", msgtype="m.image",
              caption="Фото", filename="photo.png")
    )  # fmt: skip
    ivan = _page(region, browser, setup, "ivan")
    ivan.goto(f"{base}/schools/{setup.school}/gallery")
    href = ivan.locator(f'li.report[data-event="{trap}"] a').get_attribute("href") or ""
    assert href.startswith("/gallery/media?ticket="), href
    media = f"{base}{href}"
    answer = ivan.request.get(media)
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"] == "attachment"
    assert "sandbox" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"

    # A teacher of another school gets neither the page nor Ivan's file with Ivan's link.
    stranger = _page(region, browser, setup, "stranger")
    refused = stranger.request.get(media)
    assert refused.status == 403 and "выдана другому человеку" in refused.text()
    gallery = stranger.goto(f"{base}/schools/{setup.school}/gallery")
    assert gallery is not None and gallery.status == 403
    # Not signed in: the sign-in page, never the file.
    anonymous = httpx.get(media, follow_redirects=False, timeout=30)
    assert anonymous.status_code in (302, 303, 401)


def test_forged_expired_and_borrowed_tickets_are_refused(
    region: LocalDeployment, browser: Browser, setup: Setup
) -> None:
    base = region.settings.provisioning_url
    mxc = run_async_value(_upload_only(region, setup.users["olga"], _png("#ffeb3b")))
    ivan_id, events = setup.users["ivan"], setup.events_room
    tickets = MediaTickets(key_from(region.settings.as_token.get_secret_value()))
    good = tickets.mint(mxc, "file", ivan_id, events, time.time())
    ivan = _page(region, browser, setup, "ivan")
    assert ivan.request.get(f"{base}/gallery/media?ticket={good}").status == 200  # the control
    invalid, expired = "недействительна", "истёк"
    cases = {
        # Signed with another key (anyone can write the payload; only the service signs it).
        MediaTickets(key_from("guessed")).mint(mxc, "file", ivan_id, events, time.time()): invalid,
        # Ivan's own ticket with one character of its signature changed.
        good[:-1] + ("A" if good[-1] != "A" else "B"): invalid,
        "nothing": invalid,
        # Ivan's, signed by the service, but from a page made two hours ago.
        tickets.mint(mxc, "file", ivan_id, events, time.time() - 7200): expired,
        # Another person's (Petya's): Ivan may see the room, but the ticket is not his.
        tickets.mint(mxc, "file", setup.users["petya"], events, time.time()): "другому человеку",
    }
    for ticket, reason in cases.items():
        answer = ivan.request.get(f"{base}/gallery/media?ticket={ticket}")
        assert answer.status == 403 and reason in answer.text(), (ticket, answer.text())
    # A ticket to a room whose gallery Ivan may not see (his class chat) names no report.
    chat = _class_chat(region, setup.a5)
    wrong_room = tickets.mint(mxc, "file", ivan_id, chat, time.time())
    assert ivan.request.get(f"{base}/gallery/media?ticket={wrong_room}").status == 404
    # No ticket, or one too long to read: a clear 400.
    for query in ("", f"?ticket={'a' * 5000}"):
        assert ivan.request.get(f"{base}/gallery/media{query}").status == 400


async def _upload_only(region: LocalDeployment, user_id: str, data: bytes) -> str:
    async with logged_in(region, user_id, PASSWORD) as client:
        uploaded, _ = await client.upload(
            io.BytesIO(data), content_type="image/png", filename="x.png", filesize=len(data)
        )
        assert isinstance(uploaded, UploadResponse), uploaded
        return str(uploaded.content_uri)


def _class_chat(region: LocalDeployment, class_id: int) -> str:
    with db_session(region) as session:
        room_id = session.scalar(
            select(ManagedRoom.room_id).where(
                ManagedRoom.kind == RoomKind.CLASS_CHAT, ManagedRoom.class_id == class_id
            )
        )
    assert room_id, "the class chat was not made"
    return str(room_id)


def test_thirty_thumbnails_of_a_gallery_page_are_served_and_timed(
    region: LocalDeployment, browser: Browser, setup: Setup
) -> None:
    """Prints how long a gallery page's 30 thumbnails take (the figure for issue 21's note).

    Measured as a browser fetches them: 6 at a time over one signed-in session, after
    one warm-up round (so Synapse's thumbnail generation is not what is timed).
    """

    async def post_thirty() -> None:
        """As the bot, which the homeserver does not rate-limit (people are: 30 posts in a
        row would take minutes)."""
        token = region.settings.as_token.get_secret_value()
        async with MatrixClient(region.settings.homeserver_url, token) as bot:
            for n in range(30):
                data = _png(f"#{(n * 8) % 256:02x}40{(255 - n * 8) % 256:02x}", (640, 480))
                mxc = await media.upload(bot, f"s{n}.png", "image/png", data)
                content = {
                    "msgtype": "m.image", "body": f"Снимок {n}", "filename": f"s{n}.png",
                    "url": mxc, "info": {"mimetype": "image/png"},
                }  # fmt: skip
                await rooms.send_message(bot, setup.events_room, content)

    run_async(post_thirty())
    base = region.settings.provisioning_url
    ivan = _page(region, browser, setup, "ivan")
    started = time.perf_counter()
    ivan.goto(f"{base}/schools/{setup.school}/gallery")
    page_ms = (time.perf_counter() - started) * 1000
    sources = ivan.eval_on_selector_all("ul.gallery img", "imgs => imgs.map(i => i.src)")[:30]
    assert len(sources) == 30
    cookies = {c["name"]: c["value"] for c in ivan.context.cookies()}

    with httpx.Client(cookies=cookies, timeout=60) as http:

        def fetch(url: str) -> float:
            began = time.perf_counter()
            answer = http.get(url)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("image/")
            return (time.perf_counter() - began) * 1000

        def all_thirty() -> tuple[float, list[float]]:
            began = time.perf_counter()
            with ThreadPoolExecutor(6) as pool:
                each = list(pool.map(fetch, sources))
            return (time.perf_counter() - began) * 1000, each

        all_thirty()  # warm-up: Synapse makes each thumbnail once
        rounds = [all_thirty() for _ in range(5)]
    totals = sorted(total for total, _ in rounds)
    each = sorted(ms for _, per in rounds for ms in per)
    figures = {
        "thumbnails": 30,
        "link": sources[0].split("?")[1].split("=")[0],  # ticket=… (now) or room=… (before)
        "page_ms": round(page_ms, 1),
        "all_30_ms_median": round(statistics.median(totals), 1),
        "all_30_ms_min": round(totals[0], 1),
        "per_thumbnail_ms_p50": round(statistics.median(each), 1),
        "per_thumbnail_ms_p90": round(each[int(len(each) * 0.9)], 1),
    }
    print("GALLERY_THUMBNAILS " + json.dumps(figures))
