"""The region's single sign-on, end to end: a real OIDC provider process, a region of its
own (Synapse, provisioning, bridge) with passwords switched off, and Chromium.

The region is separate from the session's (`region`): its Synapse is rendered with the
provider and without passwords, which the rest of the suite must not see.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from sqlalchemy import select

from parta.deployment import LocalDeployment
from provisioning.db.models import Person, Region, Role
from provisioning.services import invites
from provisioning.services import schools as svc
from tests.harness.oidc import Provider, oidc_provider
from tests.harness.region import new_deployment, region_session
from tests.web.conftest import screenshot
from tests.web.test_invites_ui import NEW_PASSWORD

ANNA = "@anna.sso:localhost"
# The region's portal's people, by `sub`: Parta holds Anna's and the admin's phone numbers.
PEOPLE = [
    {"sub": "portal-anna", "phone_number": "+79123456789", "phone_number_verified": True},
    {"sub": "portal-admin", "phone_number": "+79160000001", "phone_number_verified": True},
    {"sub": "portal-stranger", "phone_number": "+79990001122", "phone_number_verified": True},
    {"sub": "portal-unverified", "phone_number": "+79123456789", "phone_number_verified": False},
    # Invited, not yet registered: one whose portal checked the phone, one whose did not.
    {
        "sub": "portal-newcomer",
        "name": "Нина Новикова",
        "phone_number": "+79125550011",
        "phone_number_verified": True,
        "email": "nina@portal.example",
        "email_verified": True,
    },
    {
        "sub": "portal-unsure",
        "name": "Павел Сомов",
        "phone_number": "+79125550022",
        "phone_number_verified": False,
    },
]
# Element's own page, which the homeserver sends the browser back to with a login token;
# a stand-in served by the browser itself (nothing listens there).
ELEMENT = "http://127.0.0.1:9/element/"


@dataclass(frozen=True)
class SignOnRegion:
    deployment: LocalDeployment
    provider: Provider

    @property
    def homeserver(self) -> str:
        return self.deployment.settings.homeserver_url


@pytest.fixture(scope="module")
def sso_region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignOnRegion]:
    directory = tmp_path_factory.mktemp("sso-region")
    with oidc_provider(PEOPLE, directory / "oidc-provider.log") as provider:
        deployment = new_deployment(
            directory / "var",
            oidc_issuer=provider.issuer,
            oidc_client_id=provider.client_id,
            oidc_client_secret=provider.client_secret,
            oidc_name="Портал региона",
            password_login="false",
            policy_language="ru",
        )
        try:
            deployment.up()
            _known_people(deployment)
            yield SignOnRegion(deployment, provider)
        finally:
            deployment.stop()


def _known_people(deployment: LocalDeployment) -> None:
    """Anna (an account of her own, her phone as her school typed it) and the region admin."""
    s = deployment.settings
    bot = httpx.Client(
        base_url=s.homeserver_url,
        headers={"Authorization": f"Bearer {s.as_token.get_secret_value()}"},
        timeout=30,
    )
    with bot:
        answer = bot.put(f"/_synapse/admin/v2/users/{ANNA}", json={"displayname": "Анна"})
        assert answer.status_code in (200, 201), answer.text
    with region_session(deployment) as session:
        session.add(
            Person(
                display_name="Анна",
                matrix_user_id=ANNA,
                phone="8 (912) 345-67-89",
                roster_id="RU-77-000123",
            )
        )
        admin = session.scalar(
            select(Person).where(Person.matrix_user_id == s.region_admin_user_id)
        )
        assert admin is not None
        admin.phone = "+7 916 000-00-01"
        session.commit()


def _into_synapse_sso(page: Page, region: SignOnRegion, redirect_url: str) -> None:
    query = urlencode({"redirectUrl": redirect_url})
    page.goto(f"{region.homeserver}/_matrix/client/v3/login/sso/redirect/oidc-region?{query}")


def _sign_in_at_portal(page: Page, sub: str) -> None:
    """The provider's own sign-in page: press the button of that person."""
    page.locator(f"button[name=sub][value={sub}]").click()


def _element_stand_in(page: Page) -> None:
    def serve(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body="<p>Element</p>")

    page.route(f"{ELEMENT}**", serve)


def test_element_style_sign_on_links_a_known_person(
    sso_region: SignOnRegion, context: BrowserContext
) -> None:
    flows = httpx.get(f"{sso_region.homeserver}/_matrix/client/v3/login").json()["flows"]
    sso = next(flow for flow in flows if flow["type"] == "m.login.sso")
    assert sso["identity_providers"] == [{"id": "oidc-region", "name": "Портал региона"}]
    assert "m.login.password" not in {flow["type"] for flow in flows}

    page = context.new_page()
    _element_stand_in(page)
    _into_synapse_sso(page, sso_region, ELEMENT)
    _sign_in_at_portal(page, "portal-anna")
    # Synapse asks before it hands a login token to a client it does not know (Element).
    page.get_by_role("link", name="Continue").click()
    page.wait_for_url(f"{ELEMENT}**")
    (login_token,) = parse_qs(urlsplit(page.url).query)["loginToken"]
    answer = httpx.post(
        f"{sso_region.homeserver}/_matrix/client/v3/login",
        json={"type": "m.login.token", "token": login_token},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == ANNA
    whoami = httpx.get(
        f"{sso_region.homeserver}/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
    )
    assert whoami.json()["user_id"] == ANNA
    # The provider's subject is linked to Anna's account for good.
    linked = _admin_get(
        sso_region, "/_synapse/admin/v1/auth_providers/oidc-region/users/portal-anna"
    )
    assert linked.json()["user_id"] == ANNA


def _admin_get(region: SignOnRegion, path: str) -> httpx.Response:
    token = region.deployment.settings.as_token.get_secret_value()
    return httpx.get(
        f"{region.homeserver}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.mark.parametrize(
    ("sub", "message"),
    [
        ("portal-stranger", "Попросите в своей школе приглашение в Parta"),
        ("portal-unverified", "не подтвердила ваш телефон или почту"),
    ],
)
def test_whom_parta_does_not_know_gets_no_account_and_is_told_why(
    sso_region: SignOnRegion, context: BrowserContext, sub: str, message: str
) -> None:
    before = _admin_get(sso_region, "/_synapse/admin/v2/users?limit=1000").json()["total"]
    page = context.new_page()
    _element_stand_in(page)
    _into_synapse_sso(page, sso_region, ELEMENT)
    _sign_in_at_portal(page, sub)
    expect(page.locator("#errormsg")).to_contain_text(message)
    screenshot(page, f"sso-refused-{sub}")
    assert ELEMENT not in page.url
    after = _admin_get(sso_region, "/_synapse/admin/v2/users?limit=1000").json()["total"]
    assert after == before  # no account was made
    linked = _admin_get(sso_region, f"/_synapse/admin/v1/auth_providers/oidc-region/users/{sub}")
    assert linked.status_code == 404


def test_the_admin_ui_signs_in_with_the_button(
    sso_region: SignOnRegion, context: BrowserContext
) -> None:
    web = sso_region.deployment.settings.provisioning_url
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(f"{web}/login?next=/audit")
    expect(page.locator("input[name=password]")).to_have_count(0)  # passwords are off
    button = page.get_by_role("link", name="Войти через «Портал региона»")
    screenshot(page, "sso-login-page")
    button.click()
    _sign_in_at_portal(page, "portal-admin")
    # The callback is on Synapse's client whitelist: no "continue" page in between.
    page.wait_for_url(f"{web}/audit**")
    expect(page.locator("h1")).to_be_visible()
    assert page.context.cookies(web) and any(
        c["name"] == "parta_session" for c in page.context.cookies(web)
    )


def _login_token(context: BrowserContext, region: SignOnRegion, sub: str) -> str:
    """A genuine login token of `sub`'s account, as Synapse hands one to a client."""
    page = context.new_page()
    _element_stand_in(page)
    _into_synapse_sso(page, region, ELEMENT)
    _sign_in_at_portal(page, sub)
    page.get_by_role("link", name="Continue").click()
    page.wait_for_url(f"{ELEMENT}**")
    (token,) = parse_qs(urlsplit(page.url).query)["loginToken"]
    page.close()
    return token


def _started_sign_in_state(page: Page, region: SignOnRegion) -> str:
    """Start a sign-in in this browser (stopping at the homeserver); the state it got."""
    web = region.deployment.settings.provisioning_url
    page.route(f"{region.homeserver}/**", lambda route: route.abort())
    page.goto(f"{web}/login/sso", wait_until="commit")
    page.unroute(f"{region.homeserver}/**")
    cookies = [c for c in page.context.cookies(web) if c["name"] == "parta_sso_state"]
    assert len(cookies) == 1, cookies
    return cookies[0]["value"].split(".")[0]


def test_a_login_token_from_elsewhere_opens_no_session(
    sso_region: SignOnRegion, context: BrowserContext, browser: Browser
) -> None:
    """A link carrying the sender's own login token signs nobody else in: the callback
    wants the state of a sign-in this browser started."""
    web = sso_region.deployment.settings.provisioning_url
    attacker = browser.new_context()
    token = _login_token(attacker, sso_region, "portal-admin")
    attacker.close()
    page = context.new_page()
    page.goto(f"{web}/login/sso/callback?state=forged&{urlencode({'loginToken': token})}")
    expect(page.locator("p.error")).to_contain_text("Войдите ещё раз")
    assert not any(c["name"] == "parta_session" for c in context.cookies(web))
    # A token the homeserver never issued, with this browser's own state.
    state = _started_sign_in_state(page, sso_region)
    page.goto(f"{web}/login/sso/callback?state={state}&loginToken=syl_never_issued")
    expect(page.locator("p.error")).to_contain_text("Войдите ещё раз")
    assert not any(c["name"] == "parta_session" for c in context.cookies(web))
    # The refused token was never redeemed: with a state of this browser it signs in, so
    # what refused it above was the state alone.
    state = _started_sign_in_state(page, sso_region)
    page.goto(f"{web}/login/sso/callback?state={state}&{urlencode({'loginToken': token})}")
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    assert any(c["name"] == "parta_session" for c in context.cookies(web))


def test_passwords_are_refused_and_parta_s_bot_still_works(
    sso_region: SignOnRegion, context: BrowserContext
) -> None:
    s = sso_region.deployment.settings
    refused = httpx.post(
        f"{s.homeserver_url}/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": s.region_admin_localpart},
            "password": s.region_admin_password.get_secret_value(),
        },
    )
    assert refused.status_code in (400, 403), refused.text
    # The admin UI's password form is refused by the service too, not just hidden.
    page = context.new_page()
    page.goto(f"{s.provisioning_url}/login")
    csrf = page.locator("body").get_attribute("hx-headers") or ""
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', csrf)
    assert token is not None
    answer = page.request.post(
        f"{s.provisioning_url}/login",
        form={"login": "admin", "password": "x" * 12, "csrf_token": token.group(1)},
    )
    assert answer.status == 403
    assert "вход по паролю отключён" in answer.text()

    # The bot (appservice token) creates a room as a server admin would; the region's
    # start-up had the bot granted admin rights through the shared-secret registration.
    bot = {"Authorization": f"Bearer {s.as_token.get_secret_value()}"}
    whoami = httpx.get(f"{s.homeserver_url}/_matrix/client/v3/account/whoami", headers=bot)
    assert whoami.json()["user_id"] == s.bot_user_id
    room = httpx.post(
        f"{s.homeserver_url}/_matrix/client/v3/createRoom", headers=bot, json={"name": "SSO"}
    )
    assert room.status_code == 200, room.text
    admin = _admin_get(sso_region, f"/_synapse/admin/v2/users/{s.bot_user_id}")
    assert admin.json()["admin"] is True


def test_the_lookup_answers_parta_s_services_only(sso_region: SignOnRegion) -> None:
    s = sso_region.deployment.settings
    url = f"{s.provisioning_url}/internal/sign-on/account"
    right = {"Authorization": f"Bearer {s.as_token.get_secret_value()}"}
    anna = {"claim": "phone_number", "value": "+79123456789"}
    assert httpx.post(url, json=anna, headers=right).json() == {"user_id": ANNA}
    by_roster = {"claim": "roster_id", "value": "RU-77-000123"}
    assert httpx.post(url, json=by_roster, headers=right).json() == {"user_id": ANNA}
    stranger = {"claim": "phone_number", "value": "+79990001122"}
    assert httpx.post(url, json=stranger, headers=right).json() == {"user_id": None}
    wrong = httpx.post(url, json=anna, headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 403
    assert "user_id" not in wrong.json()
    for body in ({"claim": "snils", "value": "1"}, {"claim": "email", "value": "x" * 400}, {}):
        refused = httpx.post(url, json=body, headers=right)
        assert refused.status_code == 400, refused.text
        assert refused.json()["errcode"] == "M_BAD_JSON"


def _pupil_invite(region: SignOnRegion) -> str:
    """A class's invitation link, as a teacher hands it out."""
    with region_session(region.deployment) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        slug = f"sso-{secrets.token_hex(3)}"
        school = svc.create_school(session, region_row, "Школа №5", slug=slug, academic_year=2026)
        school_class = svc.add_class(session, school, 5, "Б")
        invite = invites.create_invite(
            session, school, Role.PUPIL, school_class=school_class, created_by=None, actor="test"
        )
        session.commit()
        return f"{region.deployment.settings.provisioning_url}/join/{invite.token}"


def test_an_invited_person_registers_with_the_portal_and_element_opens_that_account(
    sso_region: SignOnRegion, browser: Browser, context: BrowserContext
) -> None:
    """Issue 22: the button fills the form from the portal; the verified phone needs no
    SMS code; the new account is linked to the portal's person before any sign-on, so
    Element's "Sign in with …" lands in it."""
    link = _pupil_invite(sso_region)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="ru-RU")
    page = phone.new_page()
    page.goto(link)
    expect(page.locator("input[name=code]")).to_have_count(1)  # before: an SMS code
    page.get_by_role("link", name="Войти через «Портал региона»").click()
    _sign_in_at_portal(page, "portal-newcomer")
    page.wait_for_url(link)
    expect(page.locator("#sign-on-filled")).to_contain_text("Портал региона")
    expect(page.locator("input[name=display_name]")).to_have_value("Нина Новикова")
    expect(page.locator("input[name=email]")).to_have_value("nina@portal.example")
    expect(page.locator("input[name=phone]")).to_have_value("+79125550011")
    expect(page.locator("#phone-vouched")).to_be_visible()
    expect(page.locator("input[name=code]")).to_have_count(0)
    screenshot(page, "sso-join-filled")
    page.check("input[name=confirm]")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=password_again]", NEW_PASSWORD)
    page.click("button.primary")
    expect(page.locator("h1")).to_have_text("Как войти")
    expect(page.locator("#sign-on-next-time")).to_contain_text("Портал региона")
    server = sso_region.deployment.settings.server_name
    user_id = f"@{page.locator('#user-id').inner_text()}:{server}"
    assert not any(c["name"] == "parta_join_claims" for c in phone.cookies())
    phone.close()
    with region_session(sso_region.deployment) as session:
        person = session.scalar(select(Person).where(Person.matrix_user_id == user_id))
        assert person is not None
        assert (person.display_name, person.phone) == ("Нина Новикова", "+79125550011")
        person.roster_id = "RU-77-000555"  # as a later roster file would give it
        person_id = person.id
        session.commit()
    # Linked by the registration itself: nobody has signed on with the portal yet.
    linked = _admin_get(
        sso_region, "/_synapse/admin/v1/auth_providers/oidc-region/users/portal-newcomer"
    )
    assert linked.json().get("user_id") == user_id, linked.text

    token = _login_token(context, sso_region, "portal-newcomer")
    answer = httpx.post(
        f"{sso_region.homeserver}/_matrix/client/v3/login",
        json={"type": "m.login.token", "token": token},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == user_id

    # The school's administrator sees the roster ID on the person page.
    admin = context.new_page()
    web = sso_region.deployment.settings.provisioning_url
    admin.goto(f"{web}/login?next=/people/{person_id}")
    admin.click("#sign-on")
    _sign_in_at_portal(admin, "portal-admin")
    admin.wait_for_url(f"{web}/people/{person_id}")
    expect(admin.locator("dl.facts")).to_contain_text("ID в реестре")
    expect(admin.locator("dl.facts")).to_contain_text("RU-77-000555")
    admin.close()

    # The same portal person cannot register a second account.
    again = context.new_page()
    again.goto(_pupil_invite(sso_region))
    again.click("#join-sign-on")
    _sign_in_at_portal(again, "portal-newcomer")
    expect(again.locator("p.error")).to_contain_text("уже открывает учётную запись Parta")
    again.close()


def test_an_unverified_phone_still_needs_the_code_and_a_forged_callback_fills_nothing(
    sso_region: SignOnRegion, context: BrowserContext
) -> None:
    link = _pupil_invite(sso_region)
    page = context.new_page()
    page.goto(link)
    page.click("#join-sign-on")
    _sign_in_at_portal(page, "portal-unsure")
    page.wait_for_url(link)
    expect(page.locator("input[name=display_name]")).to_have_value("Павел Сомов")
    expect(page.locator("input[name=phone]")).to_have_value("+79125550022")
    expect(page.locator("#phone-vouched")).to_have_count(0)
    expect(page.locator("input[name=code]")).to_have_count(1)
    page.check("input[name=confirm]")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=password_again]", NEW_PASSWORD)
    page.click("button.primary")
    expect(page.locator("form")).to_contain_text("Введите код из SMS")
    # A callback this browser did not start (or with another state) fills nothing.
    web = sso_region.deployment.settings.provisioning_url
    for query in ("state=forged&code=x", "code=x", "error=access_denied"):
        page.goto(f"{web}/join/sign-on/callback?{query}")
        expect(page.locator("p.error")).to_contain_text("не завершился")
    fresh = context.browser
    assert fresh is not None
    stranger = fresh.new_context()
    other = stranger.new_page()
    other.goto(link)
    expect(other.locator("#sign-on-filled")).to_have_count(0)  # claims stay in their browser
    expect(other.locator("input[name=display_name]")).to_have_value("")
    stranger.close()


def test_no_secret_phone_number_or_login_token_reaches_a_log(sso_region: SignOnRegion) -> None:
    """Run last in this module: after every sign-in above has been logged."""
    logs = sorted(sso_region.deployment.settings.log_dir.glob("*.log"))
    assert any(path.name.startswith("synapse") for path in logs), logs
    text = "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in logs)
    assert "Could not map user" in text  # the refusals above were logged, without who
    for secret in (sso_region.provider.client_secret, "9123456789", "9990001122", "syl_"):
        assert secret not in text, secret
