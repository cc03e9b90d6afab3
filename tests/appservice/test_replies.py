"""What the bot says: every answer in Russian and English, with the call's own link."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from foundation.settings import Settings
from provisioning.appservice.replies import Outcome, reply_text, standalone_call_link

WIDGET_URL = (
    "https://widgets.region.test/call/?room_id=$matrix_room_id&user_id=$matrix_user_id"
    "&lang=$org.matrix.msc2873.client_language"
)


def test_the_standalone_link_names_the_room_and_no_client_variable() -> None:
    link = standalone_call_link(WIDGET_URL, "!abc:region.test")
    assert "$" not in link
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "widgets.region.test", "/call/")
    assert parse_qs(parts.query) == {"room_id": ["!abc:region.test"]}
    # The same for the settings' own template.
    settings_url = Settings(server_name="region.test").call_widget_url
    own = standalone_call_link(settings_url, "!r")
    assert "$" not in own and parse_qs(urlsplit(own).query) == {"room_id": ["!r"]}


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_answer_is_in_russian_and_english_with_the_link(outcome: Outcome) -> None:
    text = reply_text(outcome, link="https://w/call/?room_id=%21r", name="Урок", needed=50,
                      sender_level=0)  # fmt: skip
    assert text.count("https://w/call/?room_id=%21r") == 2
    russian, english = text.split("\n\n")
    assert "С телефона" in russian and "On a phone" in english
    wording = {
        Outcome.ADDED: ("добавлен", "is in this room"),
        Outcome.SENDER_MAY_NOT: ("у вас 0", "yours is 0"),
        Outcome.BOT_MAY_NOT: ("права модератора", "moderator power"),
        Outcome.SPACE: ("пространство", "space"),
    }[outcome]
    assert wording[0] in russian and wording[1] in english
