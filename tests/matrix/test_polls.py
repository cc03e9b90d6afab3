"""MSC3381's unstable events: what Parta sends, and what it reads back from any client."""

from __future__ import annotations

from typing import Any

from matrix import polls
from matrix.polls import Answer, PollEnd, PollKind, PollResponse, PollStart, parse_poll_event


def event(kind: str, content: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": fields.get("event_id", "$e"),
        "room_id": "!room",
        "sender": fields.get("sender", "@anna:region.test"),
        "origin_server_ts": fields.get("ts", 1000),
        "content": content,
    }


def test_a_start_parta_builds_reads_back_as_it_was_meant() -> None:
    content = polls.start_content(
        "Когда собрание?", ["Вторник", "Среда"], kind=PollKind.UNDISCLOSED,
        max_selections=1, fallback="Опрос: Когда собрание?\n1. Вторник\n2. Среда",
    )  # fmt: skip
    assert content["org.matrix.msc3381.poll.start"]["answers"] == [
        {"id": "a1", "org.matrix.msc1767.text": "Вторник"},
        {"id": "a2", "org.matrix.msc1767.text": "Среда"},
    ]
    assert content["org.matrix.msc1767.text"] == content["body"]  # the fallback, twice
    parsed = parse_poll_event(event(polls.START, content))
    assert parsed == PollStart(
        "$e", "!room", "@anna:region.test", 1000, "Когда собрание?", PollKind.UNDISCLOSED, 1,
        (Answer("a1", "Вторник"), Answer("a2", "Среда")),
    )  # fmt: skip


def test_element_webs_start_with_its_own_ids_is_read() -> None:
    """The MSC's own unstable example, as Element Web sends it (random answer IDs)."""
    content = {
        "org.matrix.msc1767.text": "What should we order?\n1. Pizza\n2. Wings",
        "org.matrix.msc3381.poll.start": {
            "kind": "org.matrix.msc3381.poll.disclosed",
            "max_selections": 1,
            "question": {"org.matrix.msc1767.text": "What should we order?"},
            "answers": [
                {"id": "pizza", "org.matrix.msc1767.text": "Pizza"},
                {"id": "wings", "org.matrix.msc1767.text": "Wings"},
            ],
        },
    }
    parsed = parse_poll_event(event(polls.START, content))
    assert isinstance(parsed, PollStart)
    assert parsed.kind is PollKind.DISCLOSED
    assert [a.id for a in parsed.answers] == ["pizza", "wings"]


def test_malformed_starts_are_not_polls() -> None:
    def start(block: dict[str, Any]) -> object:
        return parse_poll_event(event(polls.START, {"org.matrix.msc3381.poll.start": block}))

    answers = [
        {"id": "x", "org.matrix.msc1767.text": "X"},
        {"id": "y", "org.matrix.msc1767.text": "Y"},
    ]
    assert start({"answers": answers}) is None  # no question
    assert start({"question": {"org.matrix.msc1767.text": "Q"}, "answers": answers[:1]}) is None
    assert start({"question": {"org.matrix.msc1767.text": " "}, "answers": answers}) is None
    # Duplicate and unnamed answers are dropped; an unknown kind is undisclosed; a silly
    # max_selections is brought into range.
    parsed = start({
        "question": {"org.matrix.msc1767.text": "Q"}, "kind": "com.example.secret",
        "max_selections": 99, "answers": [*answers, answers[0], {"org.matrix.msc1767.text": "Z"}],
    })  # fmt: skip
    assert isinstance(parsed, PollStart)
    assert [a.id for a in parsed.answers] == ["x", "y"]
    assert parsed.kind is PollKind.UNDISCLOSED and parsed.max_selections == 2
    many = [{"id": f"i{n}", "org.matrix.msc1767.text": f"A{n}"} for n in range(30)]
    parsed = start({"question": {"org.matrix.msc1767.text": "Q"}, "answers": many})
    assert isinstance(parsed, PollStart) and len(parsed.answers) == 20  # the MSC's cap
    huge = start({"question": {"org.matrix.msc1767.text": "Q" * 5000}, "answers": answers})
    assert isinstance(huge, PollStart) and len(huge.question) == polls.MAX_QUESTION_CHARS


def test_responses_and_ends_refer_to_their_poll() -> None:
    response = polls.response_content("$poll", ["a1", "a2"])
    assert parse_poll_event(event(polls.RESPONSE, response, event_id="$r")) == PollResponse(
        "$r", "!room", "@anna:region.test", 1000, "$poll", ("a1", "a2")
    )
    end = polls.end_content("$poll", fallback="Опрос завершён.")
    assert end["org.matrix.msc3381.poll.end"] == {}
    assert parse_poll_event(event(polls.END, end, event_id="$x")) == PollEnd(
        "$x", "!room", "@anna:region.test", 1000, "$poll"
    )
    # Without a reference (a redacted response loses it), a response counts for nothing.
    assert parse_poll_event(event(polls.RESPONSE, {polls.RESPONSE: {"answers": ["a1"]}})) is None
    wrong_relation = {**response, "m.relates_to": {"rel_type": "m.replace", "event_id": "$poll"}}
    assert parse_poll_event(event(polls.RESPONSE, wrong_relation)) is None
    # A non-string selection is kept as an unknown answer: it spoils the vote, as the MSC says.
    odd = polls.response_content("$poll", [])
    odd[polls.RESPONSE]["answers"] = [1, "a1"]
    parsed = parse_poll_event(event(polls.RESPONSE, odd))
    assert isinstance(parsed, PollResponse) and parsed.selections == ("", "a1")


def test_other_events_and_junk_are_not_poll_events() -> None:
    assert parse_poll_event(event("m.room.message", {"body": "hi"})) is None
    assert parse_poll_event({"type": polls.START}) is None
    assert parse_poll_event("junk") is None
    no_sender = event(polls.END, polls.end_content("$p", fallback="x"), sender="")
    assert parse_poll_event(no_sender) is None
