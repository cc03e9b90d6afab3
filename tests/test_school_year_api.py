"""`POST /api/v1/schools/{id}/promote` on the running service: once per school year."""

from __future__ import annotations

import asyncio

from tests.test_api import Api, api, new_school

__all__ = ["api"]  # the module-scoped fixture, shared with tests/test_api.py


async def _classes(api: Api, school_id: object) -> list[tuple[str, bool]]:
    """(label, archived) of each class: a graduated 11А keeps its label, archived."""
    school = (await api.region_admin.get(f"/api/v1/schools/{school_id}")).json()
    return sorted((c["label"], c["archived"]) for c in school["classes"])


async def test_a_retried_promotion_does_not_archive_the_school(api: Api) -> None:
    school = await new_school(api)  # school year 2026/2027, grades up to 11
    for label in ("10А", "11А"):
        created = await api.region_admin.post(
            f"/api/v1/schools/{school['id']}/classes", json={"label": label}
        )
        assert created.status_code == 201, created.text
    path = f"/api/v1/schools/{school['id']}/promote"
    first = await api.region_admin.post(path, json={"to_year": "2027/2028"})
    assert first.status_code == 200, first.text
    assert await _classes(api, school["id"]) == [("11А", False), ("11А", True)]

    retried = await api.region_admin.post(path, json={"to_year": "2027/2028"})
    assert retried.status_code == 409, retried.text
    assert retried.json() == {
        "errcode": "M_CONFLICT",
        "error": "The school is in the school year 2027/2028 already; it was not promoted again",
    }
    # Before the fix the retry graduated 11А as well: nothing of the school was left.
    assert await _classes(api, school["id"]) == [("11А", False), ("11А", True)]
    assert (await api.region_admin.get(f"/api/v1/schools/{school['id']}")).json()[
        "academic_year"
    ] == 2027

    for body in ({}, {"to_year": "2029/2030"}, {"to_year": "2028"}, {"to_year": 2028}):
        refused = await api.region_admin.post(path, json=body)
        assert 400 <= refused.status_code < 500 and refused.status_code != 409, refused.text
        assert set(refused.json()) == {"errcode", "error"}
    later = await api.region_admin.post(path, json={"to_year": "2029/2030"})
    assert "Only the next school year, 2028/2029" in later.json()["error"]


async def test_two_promotions_at_once_promote_the_school_once(api: Api) -> None:
    school = await new_school(api)
    for label in ("10А", "11А"):
        await api.region_admin.post(
            f"/api/v1/schools/{school['id']}/classes", json={"label": label}
        )
    path = f"/api/v1/schools/{school['id']}/promote"
    responses = await asyncio.gather(
        *(api.region_admin.post(path, json={"to_year": "2027/2028"}) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409], [
        r.text for r in responses
    ]
    assert await _classes(api, school["id"]) == [("11А", False), ("11А", True)]


async def test_a_school_and_its_people_are_changed_through_the_api(api: Api) -> None:
    school = await new_school(api)
    base = f"/api/v1/schools/{school['id']}"
    labels = {}
    for label in ("5А", "5Б"):
        created = await api.region_admin.post(f"{base}/classes", json={"label": label})
        labels[label] = created.json()["id"]
    pupil = (
        await api.region_admin.post(
            f"{base}/people",
            json={"display_name": "Иван Учеников", "role": "pupil", "class_label": "5А"},
        )
    ).json()
    teacher = (
        await api.region_admin.post(
            f"{base}/people", json={"display_name": "Мария Учителева", "role": "teacher"}
        )
    ).json()

    renamed = await api.region_admin.put(base, json={"name": "Лицей имени Пушкина"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Лицей имени Пушкина"
    again = await api.region_admin.put(base, json={"name": "Лицей имени Пушкина"})
    assert again.status_code == 409, again.text

    klass = await api.region_admin.patch(f"{base}/classes/{labels['5Б']}", json={"label": "5В"})
    assert klass.json()["label"] == "5В", klass.text
    other_grade = await api.region_admin.patch(
        f"{base}/classes/{labels['5Б']}", json={"label": "6В"}
    )
    assert other_grade.status_code == 400
    assert "only with the school year" in other_grade.json()["error"]

    appointed = await api.region_admin.put(
        f"{base}/classes/{labels['5А']}/class-teacher", json={"person_id": teacher["id"]}
    )
    assert "class_teacher:5А" in appointed.json()["roles"], appointed.text
    not_a_teacher = await api.region_admin.put(
        f"{base}/classes/{labels['5А']}/class-teacher", json={"person_id": pupil["id"]}
    )
    assert not_a_teacher.status_code == 400, not_a_teacher.text

    for body in (
        {"display_name": "И"},
        {"display_name": "Иван", "phone": "abc"},
        {"display_name": "Иван", "email": "nope"},
        {"display_name": "Иван", "role": "teacher"},
    ):
        refused = await api.region_admin.put(f"{base}/people/{pupil['id']}", json=body)
        assert refused.status_code in (400, 422), refused.text
    edited = await api.region_admin.put(
        f"{base}/people/{pupil['id']}",
        json={"display_name": "Иван Петров", "phone": "+7 900 100-20-30", "email": None},
    )
    assert edited.json()["display_name"] == "Иван Петров", edited.text
    # The roster ID (issue 22): checked at the edge, kept when left out, unique.
    bad_id = await api.region_admin.put(
        f"{base}/people/{pupil['id']}", json={"display_name": "Иван Петров", "roster_id": "a b"}
    )
    assert bad_id.status_code in (400, 422) and "roster ID" in bad_id.text, bad_id.text
    given = await api.region_admin.put(
        f"{base}/people/{pupil['id']}",
        json={"display_name": "Иван Петров", "roster_id": f"RU-{pupil['id']}"},
    )
    assert given.json()["roster_id"] == f"RU-{pupil['id']}", given.text
    kept = await api.region_admin.put(
        f"{base}/people/{pupil['id']}", json={"display_name": "Иван Петров"}
    )
    assert kept.json()["roster_id"] == f"RU-{pupil['id']}", kept.text
    twin = await api.region_admin.post(
        f"{base}/people",
        json={"display_name": "Иван Двойник", "role": "teacher", "roster_id": f"RU-{pupil['id']}"},
    )
    assert twin.status_code == 409, twin.text
    assert twin.json()["error"] == f"the roster ID RU-{pupil['id']} is already Иван Петров's"

    full = await api.region_admin.post(f"{base}/classes/{labels['5А']}/archive")
    assert full.status_code == 400 and "move them" in full.json()["error"]
    removed = await api.region_admin.delete(f"{base}/people/{pupil['id']}")
    assert removed.status_code == 204, removed.text
    gone = await api.region_admin.delete(f"{base}/people/{pupil['id']}")
    assert gone.status_code == 404
    archived = await api.region_admin.post(f"{base}/classes/{labels['5А']}/archive")
    assert archived.json()["archived"] is True, archived.text
    for response in (
        await api.region_admin.put("/api/v1/schools/99999999", json={"name": "Школа"}),
        await api.region_admin.post(f"{base}/classes/99999999/archive"),
        await api.region_admin.put(f"/api/v1/schools/{2**64}", json={"name": "Школа"}),
        await api.region_admin.delete(f"{base}/people/{2**63}"),
    ):
        assert 400 <= response.status_code < 500 and response.json()["error"], response.text
