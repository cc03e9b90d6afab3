"""Parent meetings through the REST API on the running region: who may, what is refused
with 422 naming the problem, and the invitation and minutes read by a parent in Matrix."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from parta.deployment import LocalDeployment
from provisioning.db.models import ParentMeeting
from tests.harness.meetings import PASSWORD, MeetingSchool, ParentReader, make_school
from tests.harness.region import region_session


@pytest.fixture(scope="module")
def school(region: LocalDeployment) -> MeetingSchool:
    return make_school(region)


@pytest.fixture(scope="module")
def api(region: LocalDeployment, school: MeetingSchool) -> Iterator[dict[str, httpx.Client]]:
    clients: dict[str, httpx.Client] = {}
    for key in ("class_teacher", "subject_teacher", "other_teacher", "director"):
        login = httpx.post(
            f"{region.settings.homeserver_url}/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": getattr(school, key)},
                "password": PASSWORD,
            },
            timeout=30,
        )
        login.raise_for_status()
        clients[key] = httpx.Client(
            base_url=region.settings.provisioning_url,
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
            timeout=60,
        )
    yield clients
    for client in clients.values():
        client.close()


def _url(school: MeetingSchool) -> str:
    return f"/api/v1/schools/{school.school_id}/classes/{school.class_id}/meetings"


def _body(**changes: Any) -> dict[str, Any]:
    moscow = timezone(timedelta(hours=3))
    starts = (datetime.now(UTC) + timedelta(days=4)).astimezone(moscow).replace(microsecond=0)
    body: dict[str, Any] = {
        "agenda": "Подготовка к экзаменам",
        "hybrid": False,
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=1)).isoformat(),
    }
    body.update(changes)
    return body


def test_the_class_teacher_schedules_and_writes_the_minutes_the_parent_reads_them(
    region: LocalDeployment, school: MeetingSchool, api: dict[str, httpx.Client]
) -> None:
    parent = ParentReader(region, school.parent, school.parents_room_id)
    body = _body(agenda="Подготовка к экзаменам (API)")
    created = api["class_teacher"].post(_url(school), json=body)
    assert created.status_code == 201, created.text
    meeting = created.json()
    assert meeting["state"] == "scheduled" and meeting["room_id"] == school.parents_room_id
    assert datetime.fromisoformat(meeting["starts_at"]) == datetime.fromisoformat(body["starts_at"])
    listed = api["director"].get(_url(school)).json()
    assert meeting["id"] in [row["id"] for row in listed]
    parent.wait_for("Родительское собрание 5А класса", "Подготовка к экзаменам (API)")

    early = api["class_teacher"].put(
        f"{_url(school)}/{meeting['id']}/minutes", json={"minutes": "Решили"}
    )
    assert early.status_code == 422 and "once the meeting has begun" in early.json()["error"]
    with region_session(region) as session:
        session.execute(
            update(ParentMeeting)
            .where(ParentMeeting.id == meeting["id"])
            .values(starts_at=datetime.now(UTC) - timedelta(minutes=30))
        )
        session.commit()
    late = api["class_teacher"].patch(f"{_url(school)}/{meeting['id']}", json={"hybrid": True})
    assert late.status_code == 422 and "can no longer be changed" in late.json()["error"]
    saved = api["class_teacher"].put(
        f"{_url(school)}/{meeting['id']}/minutes",
        json={"minutes": "Решили: пробный экзамен в марте (API)"},
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["minutes_version"] == 1 and saved.json()["state"] == "live"
    parent.wait_for("Протокол родительского собрания 5А класса", "(API)")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (
            {"ends_at": "2031-09-01T09:00+03:00", "starts_at": "2031-09-01T10:00+03:00"},
            "must end after it starts",
        ),
        (
            {"starts_at": "2020-09-01T10:00+03:00", "ends_at": "2020-09-01T11:00+03:00"},
            "in the future",
        ),
        ({"starts_at": "2031-09-01T10:00"}, "time zone"),
        ({"agenda": "я" * 2001}, "2001 characters; at most 2000"),
    ],
)
def test_a_bad_meeting_is_refused_with_422_naming_the_problem(
    school: MeetingSchool, api: dict[str, httpx.Client], changes: dict[str, Any], words: str
) -> None:
    answer = api["class_teacher"].post(_url(school), json=_body(**changes))
    assert answer.status_code == 422, answer.text
    assert answer.json()["errcode"] == "M_INVALID_PARAM" and words in answer.json()["error"]


@pytest.mark.parametrize("who", ["subject_teacher", "other_teacher"])
def test_a_subject_teacher_or_another_classs_teacher_is_refused(
    school: MeetingSchool, api: dict[str, httpx.Client], who: str
) -> None:
    assert api[who].post(_url(school), json=_body()).status_code == 403
    assert api[who].get(_url(school)).status_code == 403
