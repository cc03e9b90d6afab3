"""What an answer in a channel may carry (`school_policy.answers`), as an attacker writes it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from school_policy import answers
from school_policy.answers import REACTION_KEY_MAX, is_short_key
from school_policy.messages import MESSAGES
from synapse.synapse_rust.events import JsonObject

from provisioning.reconciler import desired

UNSTABLE = "org.matrix.msc3381.poll.response"
STABLE = "m.poll.response"
REFERENCE = {"rel_type": "m.reference", "event_id": "$poll"}


def reaction(key: object, **relation: Any) -> dict[str, Any]:
    return {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": "$post", "key": key, **relation}
    }


def response(*chosen: str, **more: Any) -> dict[str, Any]:
    return {"m.relates_to": REFERENCE, UNSTABLE: {"answers": list(chosen)}, **more}


def answer_refusal(event_type: str, content: dict[str, Any]) -> str | None:
    """The judgement of the content as a dict, and as Synapse hands it to the module (its
    own immutable mapping, whose keys view is no set): both alike."""
    judged = answers.answer_refusal(event_type, content)
    assert answers.answer_refusal(event_type, JsonObject(content)) == judged
    return judged


def test_the_reconciler_opens_exactly_the_events_the_module_judges() -> None:
    assert set(desired.ANSWER_EVENTS) == answers.ANSWER_EVENTS
    for reason in ("channel_poll_answer", "channel_reaction", "channel_redaction_reason"):
        assert set(MESSAGES[reason]) == {"ru", "en"}


@pytest.mark.parametrize(
    ("event_type", "content"),
    [
        (UNSTABLE, response("yes")),  # Element Web and Element X
        (UNSTABLE, response("yes", "no")),  # a poll with several choices
        (UNSTABLE, {"m.relates_to": REFERENCE, UNSTABLE: {}}),  # a spoiled vote (MSC3381)
        (STABLE, {"m.relates_to": REFERENCE, "m.selections": ["yes"]}),  # the stable form
        (STABLE, {"m.relates_to": REFERENCE, STABLE: {"answers": ["yes"]}}),  # ruma's older one
    ],
)
def test_a_poll_response_with_only_the_answers_is_allowed(
    event_type: str, content: dict[str, Any]
) -> None:
    assert answer_refusal(event_type, content) is None


@pytest.mark.parametrize(
    "content",
    [
        response("yes", body="Отмените контрольную!"),  # a message dressed as a response
        response("yes", formatted_body="<h1>Всем!</h1>", format="org.matrix.custom.html"),
        response("yes", msgtype="m.text"),
        response("yes", **{"m.text": [{"body": "Всем привет"}]}),
        response("yes", **{"org.matrix.msc1767.text": "Всем привет"}),
        response("yes", **{"m.new_content": {"body": "Всем привет"}}),
        response("yes", **{"m.mentions": {"room": True}}),  # would ping the whole class
        {UNSTABLE: {"answers": ["yes"]}},  # not a reference to a poll
        {"m.relates_to": {**REFERENCE, "rel_type": "m.thread"}, UNSTABLE: {"answers": ["yes"]}},
        {"m.relates_to": {"rel_type": "m.reference"}, UNSTABLE: {"answers": ["yes"]}},
        {"m.relates_to": {**REFERENCE, "event_id": "poll"}, UNSTABLE: {"answers": ["yes"]}},
        {"m.relates_to": {**REFERENCE, "event_id": "$" + "x" * 300}, UNSTABLE: {"answers": []}},
        {  # a reply: clients would show the response as a message quoting the poll
            "m.relates_to": {**REFERENCE, "m.in_reply_to": {"event_id": "$poll"}},
            UNSTABLE: {"answers": ["yes"]},
        },
        {"m.relates_to": REFERENCE},  # no answers at all
        {"m.relates_to": REFERENCE, UNSTABLE: {"answers": ["yes"], "body": "ещё текст"}},
        {"m.relates_to": REFERENCE, UNSTABLE: {"answers": "yes"}},
        {"m.relates_to": REFERENCE, UNSTABLE: ["yes"]},
        {"m.relates_to": REFERENCE, UNSTABLE: {"answers": ["x" * 65]}},  # text in an answer ID
        {"m.relates_to": REFERENCE, UNSTABLE: {"answers": ["да\nи ещё"]}},
        {"m.relates_to": REFERENCE, UNSTABLE: {"answers": [""]}},
        {"m.relates_to": REFERENCE, UNSTABLE: {"answers": [str(i) for i in range(21)]}},
        {"m.relates_to": REFERENCE, "m.selections": "yes"},
        {"m.relates_to": REFERENCE, "m.selections": [1]},
    ],
)
def test_a_poll_response_that_carries_more_is_refused(content: dict[str, Any]) -> None:
    assert answer_refusal(UNSTABLE, content) == "channel_poll_answer"
    assert answer_refusal(STABLE, content) == "channel_poll_answer"


@pytest.mark.parametrize(
    "key",
    ["👍", "❤️", "+1", "🇷🇺", "👨‍👩‍👧‍👦", "🧑🏻‍❤️‍💋‍🧑🏼", "ok", "x" * REACTION_KEY_MAX, "спасибо"],
)
def test_a_reaction_with_a_short_key_is_allowed(key: str) -> None:
    assert answer_refusal("m.reaction", reaction(key)) is None


@pytest.mark.parametrize(
    "content",
    [
        reaction("Завтра контрольной не будет, учитель заболел! " * 4),  # 200 characters
        reaction("x" * (REACTION_KEY_MAX + 1)),
        reaction("да\nнет"),
        reaction("да\u2028нет"),
        reaction("👍\n"),  # a trailing line break: one line, but not the key itself
        reaction("a\tb"),
        reaction(""),
        reaction("   "),
        reaction(None),
        reaction(42),
        reaction("👍", **{"m.in_reply_to": {"event_id": "$post"}}),
        {"m.relates_to": {"rel_type": "m.reference", "event_id": "$post", "key": "👍"}},
        {"m.relates_to": {"rel_type": "m.annotation", "key": "👍"}},
        {**reaction("👍"), "body": "Всем привет"},
        {**reaction("👍"), "url": "mxc://region/picture", "info": {"w": 256}},  # an image
        {"m.relates_to": "👍"},
        {},
    ],
)
def test_a_reaction_that_could_carry_a_message_is_refused(content: dict[str, Any]) -> None:
    assert answer_refusal("m.reaction", content) == "channel_reaction"


def test_taking_ones_own_back_carries_no_reason() -> None:
    assert answer_refusal("m.room.redaction", {}) is None
    assert answer_refusal("m.room.redaction", {"redacts": "$mine"}) is None
    assert answer_refusal("m.room.redaction", {"reason": "Всем: завтра без формы"}) == (
        "channel_redaction_reason"
    )


@given(st.text(min_size=1, max_size=REACTION_KEY_MAX))
def test_any_short_key_on_one_line_is_allowed(key: str) -> None:
    one_line = key.splitlines() == [key] and key.isprintable()
    if one_line and not key.isspace():
        assert is_short_key(key)


@given(st.text(min_size=REACTION_KEY_MAX + 1, max_size=10 * REACTION_KEY_MAX))
def test_no_key_longer_than_the_bound_is_allowed(key: str) -> None:
    assert not is_short_key(key)
    assert answer_refusal("m.reaction", reaction(key)) == "channel_reaction"


@given(
    st.text(max_size=REACTION_KEY_MAX // 2),
    st.sampled_from(["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x85", "\u2028", "\u2029"]),
    st.text(max_size=REACTION_KEY_MAX // 2 - 2),
)
def test_no_key_spanning_lines_is_allowed(before: str, line_break: str, after: str) -> None:
    assert not is_short_key(before + line_break + after)
