"""A poll's results from its events: MSC3381's rules, as Element counts them."""

from __future__ import annotations

from dataclasses import dataclass, field

from provisioning.services.poll_results import counted_choice, tally

CREATOR = "@teacher:region.test"
ANNA, BORIS, VERA = "@anna:region.test", "@boris:region.test", "@vera:region.test"


@dataclass
class Start:
    room_id: str = "!room"
    creator: str = CREATOR
    max_selections: int = 1
    answer_ids: list[str] = field(default_factory=lambda: ["a1", "a2", "a3"])


@dataclass
class Response:
    id: int
    sender: str
    origin_server_ts: int
    selections: list[str]
    room_id: str = "!room"


@dataclass
class End:
    id: int
    sender: str
    origin_server_ts: int
    sender_may_redact: bool = False
    room_id: str = "!room"


def test_each_persons_latest_response_counts() -> None:
    results = tally(
        Start(),
        [
            Response(1, ANNA, 100, ["a1"]),
            Response(2, BORIS, 110, ["a1"]),
            Response(3, ANNA, 120, ["a2"]),  # Anna changes her mind
            Response(4, BORIS, 90, ["a3"]),  # arrived later, sent earlier: not the latest
        ],
        [],
    )
    assert dict(results.counts) == {"a1": 1, "a2": 1, "a3": 0}
    assert dict(results.choices) == {ANNA: ("a2",), BORIS: ("a1",)}
    assert not results.ended and results.voters == 2


def test_equal_timestamps_go_by_the_order_received() -> None:
    results = tally(Start(), [Response(7, ANNA, 100, ["a1"]), Response(8, ANNA, 100, ["a3"])], [])
    assert dict(results.choices) == {ANNA: ("a3",)}


def test_an_unknown_answer_spoils_the_vote_and_replaces_the_earlier_one() -> None:
    responses = [Response(1, ANNA, 100, ["a1"]), Response(2, ANNA, 200, ["a1", "zzz"])]
    results = tally(Start(max_selections=2), responses, [])
    assert dict(results.counts) == {"a1": 0, "a2": 0, "a3": 0} and results.voters == 0


def test_selections_are_cut_to_the_maximum_and_counted_once() -> None:
    assert counted_choice(Start(), ["a2", "a1"]) == ("a2",)
    assert counted_choice(Start(max_selections=2), ["a2", "a2", "a3"]) == ("a2",)
    assert counted_choice(Start(max_selections=3), ["a2", "a2", "a3"]) == ("a2", "a3")
    # What lies beyond the maximum is not looked at, unknown or not (the MSC truncates first).
    assert counted_choice(Start(), ["a1", "nonsense"]) == ("a1",)
    assert counted_choice(Start(), []) == ()  # an empty response withdraws the vote


def test_only_a_valid_end_ends_the_poll_and_later_responses_do_not_count() -> None:
    responses = [
        Response(1, ANNA, 100, ["a1"]),
        Response(2, BORIS, 300, ["a2"]),  # after the creator's end at 250
        Response(3, VERA, 250, ["a3"]),  # on the end's timestamp: counts
    ]
    ends = [
        End(1, BORIS, 200),  # a member without the power to redact: ignored
        End(2, CREATOR, 250),
        End(3, VERA, 400, sender_may_redact=True),  # a repeated end: the first one counts
    ]
    results = tally(Start(), responses, ends)
    assert results.ended and results.ended_ts == 250 and results.ended_by == CREATOR
    assert dict(results.counts) == {"a1": 1, "a2": 0, "a3": 1}


def test_a_moderator_may_end_someone_elses_poll() -> None:
    results = tally(Start(), [], [End(1, VERA, 500, sender_may_redact=True)])
    assert results.ended_by == VERA


def test_events_of_another_room_do_not_count() -> None:
    results = tally(
        Start(),
        [Response(1, ANNA, 100, ["a1"], room_id="!elsewhere")],
        [End(1, CREATOR, 50, room_id="!elsewhere")],
    )
    assert results.voters == 0 and not results.ended
