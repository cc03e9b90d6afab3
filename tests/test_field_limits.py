"""One set of field limits: the roster CSV, the REST API and the registration form agree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from parta.deployment import LocalDeployment
from provisioning.api.schemas import PersonCreate
from provisioning.services import limits
from provisioning.services.invites import check_registration, check_subjects
from provisioning.services.roster import RosterError, parse_roster
from tests.test_api import Api, new_school, token_for

LONG_NAME = "Я" * 70_000
LONG_NAME_REFUSAL = "the name has 70000 characters; at most 120 are allowed"
HEADER = "класс;роль;ФИО;телефон;почта\n"


def roster_refusal(name: str = "Иван Петров", phone: str = "", email: str = "") -> str | None:
    """What the roster import says about one pupil's row, or None if it takes it."""
    quoted = '"' + name.replace('"', '""') + '"'
    try:
        parse_roster(f"{HEADER}5А;ученик;{quoted};{phone};{email}\n".encode())
    except RosterError as refused:
        return "; ".join(refused.problems)
    return None


def api_refusal(
    name: str = "Иван Петров", phone: str | None = None, email: str | None = None
) -> str | None:
    """What the API's schema says about the same person, or None if it takes them."""
    try:
        PersonCreate(display_name=name, role="pupil", class_label="5А", phone=phone, email=email)
    except ValidationError as refused:
        return "; ".join(str(e["msg"]) for e in refused.errors())
    return None


def form_refusal(
    name: str = "Иван Петров", phone: str = "", email: str = "x@example.org"
) -> str | None:
    """What the registration form says about the same person, or None if it takes them.

    The form's phone is the number people sign in with and get codes at, so it must be a
    mobile one: the form takes fewer numbers than a roster's contact column, never more.
    """
    _, problems = check_registration(
        name, phone, email, "password-1", "password-1", phone_required=False
    )
    said = [template % params if params else template for template, params in problems.values()]
    return "; ".join(said) or None


def test_a_70000_character_name_gets_the_same_refusal_at_every_edge() -> None:
    assert roster_refusal(LONG_NAME) == f"row 2: {LONG_NAME_REFUSAL}"
    assert api_refusal(LONG_NAME) == LONG_NAME_REFUSAL
    assert form_refusal(LONG_NAME) == LONG_NAME_REFUSAL


@pytest.mark.parametrize(
    "name", ["Иван\x00Петров", "Иван\rПетров", "Иван\u202eвортеП", "Иван\x1bПетров"]
)
def test_control_characters_in_a_name_are_refused_everywhere(name: str) -> None:
    said = "the name contains a control character (such as NUL or a line break)"
    assert roster_refusal(name) == f"row 2: {said}"
    assert api_refusal(name) == said
    assert form_refusal(name) == said


@pytest.mark.parametrize("phone", ["12345", "+7 900", "00000000000", "+7 900 123-45-67-89-01"])
def test_a_number_that_is_not_a_phone_is_refused_everywhere(phone: str) -> None:
    said = f"«{phone}» is not a phone number"
    assert roster_refusal(phone=phone) == f"row 2: {said}"
    assert api_refusal(phone=phone) == said
    form_said = form_refusal(phone=phone)
    assert form_said is not None
    assert form_said.startswith(f"«{phone}» does not look like a phone number: check the digits")


@pytest.mark.parametrize("phone", ["+7 900 123-45-67", "8 (900) 123 45 67", "+44 20 7946 0958"])
def test_real_phone_numbers_pass_everywhere(phone: str) -> None:
    assert roster_refusal(phone=phone) is None
    assert api_refusal(phone=phone) is None
    if "+44 20" in phone:  # a London landline: a fine contact, but no SMS reaches it
        assert (
            form_refusal(phone=phone)
            == f"«{phone}» is not a mobile number: codes come by SMS, so give a mobile one."
        )
    else:
        assert form_refusal(phone=phone) is None


@pytest.mark.parametrize("subject", ["М" * 61, "Мате\x00матика"])
def test_a_subject_is_refused_alike_in_the_roster_the_api_and_the_teachers_form(
    subject: str,
) -> None:
    with pytest.raises(RosterError) as in_roster:
        parse_roster(f"класс;роль;ФИО;предмет\n5А;учитель;Ольга Смирнова;{subject}\n".encode())
    with pytest.raises(ValidationError) as in_api:
        PersonCreate(display_name="Ольга Смирнова", role="teacher", subject=subject)
    form = check_subjects(f"Физика, {subject}")
    assert form is not None
    said = form[0] % form[1] if form[1] else form[0]
    assert in_roster.value.problems == [f"row 2: {said}"]
    assert in_api.value.errors()[0]["msg"] == said
    assert check_subjects("Физика; Математика") is None


def test_a_refusal_repeats_only_the_start_of_a_long_value() -> None:
    said = roster_refusal(email="x" * 1000)
    assert said is not None and len(said) < 120 and said.endswith("…» is not an e-mail address")


names = st.text(
    st.characters(codec="utf-8", exclude_characters=";\n"), min_size=0, max_size=130
) | st.sampled_from(["Иван Петров", "  Анна   Мария  ", "Ёж", "Я" * 120, "Я" * 121])
phones = st.sampled_from(["", "12345", "+7 900 123-45-67", "8 900 1234567", "+7 (495) 1"]) | (
    st.text(st.sampled_from("+0123456789 ()-"), max_size=24)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names, phone=phones)
def test_what_one_edge_accepts_every_edge_accepts(name: str, phone: str) -> None:
    """CSV = API = UI: the three edges take and refuse exactly the same names and phones;
    the registration form's sign-in number (a mobile) is never one the others refuse."""
    in_roster = roster_refusal(name, phone) is None
    in_api = api_refusal(name, phone or None) is None
    assert in_roster == in_api, (name, phone)
    assert (roster_refusal(name) is None) == (form_refusal(name) is None), name
    if form_refusal(name, phone) is None:
        assert in_roster, (name, phone)


@pytest.fixture(scope="module")
async def api(region: LocalDeployment) -> AsyncIterator[Api]:
    """The REST API as the region's administrator."""
    s = region.settings
    admin = s.region_admin_user_id
    token = await token_for(region, admin, s.region_admin_password.get_secret_value())
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=s.provisioning_url, headers=headers, timeout=30) as http:
        yield Api(http, s.provisioning_url)


async def test_the_api_refuses_a_70000_character_name_in_both_its_routes(api: Api) -> None:
    school = await new_school(api)
    await api.region_admin.post(f"/api/v1/schools/{school['id']}/classes", json={"label": "5А"})
    people = f"/api/v1/schools/{school['id']}/people"
    # A JSON body that large is refused at the edge before it is read (64 KiB per request)...
    person = await api.region_admin.post(
        people, json={"display_name": LONG_NAME, "role": "pupil", "class_label": "5А"}
    )
    assert person.status_code == 413, person.text
    assert person.json()["errcode"] == "M_TOO_LARGE"
    # ...and one that fits is refused by the same limit as the roster's.
    person = await api.region_admin.post(
        people, json={"display_name": "Я" * 121, "role": "pupil", "class_label": "5А"}
    )
    assert person.status_code == 400, person.text
    assert "the name has 121 characters; at most 120 are allowed" in person.json()["error"]
    imported = await api.region_admin.post(
        f"/api/v1/schools/{school['id']}/import",
        content=f"{HEADER}5А;ученик;{LONG_NAME};;\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert imported.status_code == 400, imported.text
    assert imported.json() == {
        "errcode": "PARTA_BAD_ROSTER",
        "error": f"The file was not imported: row 2: {LONG_NAME_REFUSAL}",
    }


def test_limits_say_why_in_their_exception() -> None:
    with pytest.raises(limits.FieldRefused) as refused:
        limits.person_name("Я")
    assert refused.value.template.startswith("the name is empty or too short")


@pytest.mark.parametrize(
    ("csv_text", "said"),
    [
        (
            "класс;роль;ФИО\n5А;ученик;Иван\rПетров\n",
            "row 3: the role is empty; the name is empty or too short",
        ),
        (
            "класс;роль;ФИО\n5А;ученик;" + "Я" * 131_073 + "\n",
            "row 2: a cell has more than 131072 characters; the rows after it were not read",
        ),
    ],
    ids=["lone-carriage-return", "cell-over-131072"],
)
async def test_an_unreadable_csv_is_a_400_that_names_the_row(
    api: Api, csv_text: str, said: str
) -> None:
    school = await new_school(api)
    imported = await api.region_admin.post(
        f"/api/v1/schools/{school['id']}/import",
        content=csv_text.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert imported.status_code == 400, imported.text
    assert imported.json()["errcode"] == "PARTA_BAD_ROSTER"
    assert said in imported.json()["error"]
