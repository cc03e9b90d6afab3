"""What a pupil or a parent may send in a channel, judged as an attacker would write it.

Channels (a class channel, the school's announcements and materials) are for reading:
moderators post, everyone else answers (issue 21). An answer is a poll response, a
reaction, or taking back one's own. Each of these event types can carry any JSON a client
puts in it, and clients render some of it (a reaction's key under the post, a `body` as
a fallback text): so each is allowed only in the shape that says nothing but the answer,
and anything more is refused, never stripped (the sender's client would show what it
sent, and the event is signed as it is).

- A poll response (MSC3381: `org.matrix.msc3381.poll.response`, which Element Web and
  Element X send, and the stable `m.poll.response`) is an `m.reference` to the poll with
  the chosen answers' IDs: no `body`, no `m.text`, nothing else.
- A reaction (`m.reaction`) is an `m.annotation` of an event with a key of at most
  `REACTION_KEY_MAX` characters on one line: an emoji, or "+1", not a paragraph.
- A redaction (taking one's own reaction or answer back; Synapse lets nobody below
  `redact` take back other people's events) carries no `reason`, which clients show.

Pure functions over the event's content: they run for every such event on every Synapse
worker, so they look at a handful of keys and never walk anything unbounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

POLL_RESPONSE_UNSTABLE = "org.matrix.msc3381.poll.response"
POLL_RESPONSE = "m.poll.response"
REACTION = "m.reaction"
TAKING_BACK = "m.room.redaction"
# The events anyone in a channel may send; the reconciler gives them level 0 there
# (provisioning.reconciler.desired.ANSWER_EVENTS, the same types).
ANSWER_EVENTS = frozenset({POLL_RESPONSE_UNSTABLE, POLL_RESPONSE, REACTION, TAKING_BACK})

REACTION_KEY_MAX = 16  # characters: the longest emoji (a family, flags, skin tones) fit
POLL_ANSWERS_MAX = 20  # MSC3381: a poll offers at most 20 answers
ANSWER_ID_MAX = 64  # an answer's ID, never shown: clients generate short random ones
EVENT_ID_MAX = 255  # the spec's bound on identifiers

# Where a response keeps the chosen answers: the unstable block `{"answers": [...]}` (also
# under the stable name, as ruma once wrote it) or the stable `m.selections` list.
_ANSWER_BLOCKS = frozenset({POLL_RESPONSE_UNSTABLE, POLL_RESPONSE})
_SELECTIONS = "m.selections"
_RELATES_TO = "m.relates_to"
_RESPONSE_KEYS = _ANSWER_BLOCKS | {_SELECTIONS, _RELATES_TO}
_BLOCK_KEYS = frozenset({"answers"})
_REFERENCE_KEYS = frozenset({"rel_type", "event_id"})
_ANNOTATION_KEYS = frozenset({"rel_type", "event_id", "key"})
# Redactions: the ID of the event taken back is in the content from room version 11 on.
_REDACTION_KEYS = frozenset({"redacts"})


def answer_refusal(event_type: str, content: Mapping[str, Any]) -> str | None:
    """Why this answer is refused (a key of `messages.MESSAGES`), or None to allow it.

    `event_type` is one of `ANSWER_EVENTS`: the caller refuses every other event itself.
    """
    if event_type == REACTION:
        return None if _is_reaction(content) else "channel_reaction"
    if event_type == TAKING_BACK:
        return None if _only(content, _REDACTION_KEYS) else "channel_redaction_reason"
    return None if _is_poll_response(content) else "channel_poll_answer"


def _is_poll_response(content: Mapping[str, Any]) -> bool:
    """Only the reference to the poll and the chosen answers: nothing a client would show."""
    if not _only(content, _RESPONSE_KEYS):
        return False  # a `body`, `m.text`, `formatted_body`, `m.new_content`, a mention…
    if not _relates(content.get(_RELATES_TO), "m.reference", _REFERENCE_KEYS):
        return False
    blocks = 0
    for name in _ANSWER_BLOCKS:
        if name in content:
            block = content[name]
            # An empty block (or no `answers`) is a spoiled vote: MSC3381 counts it so.
            if not isinstance(block, Mapping) or not _only(block, _BLOCK_KEYS):
                return False
            if "answers" in block and not _are_answer_ids(block["answers"]):
                return False
            blocks += 1
    if _SELECTIONS in content:
        if not _are_answer_ids(content[_SELECTIONS]):
            return False
        blocks += 1
    return blocks > 0


def _is_reaction(content: Mapping[str, Any]) -> bool:
    """An annotation whose key is an emoji or a few characters, on one line."""
    if len(content) != 1 or _RELATES_TO not in content:
        return False  # an image reaction's `url` and `info`, a `body`, a shortcode…
    relation = content[_RELATES_TO]
    if not _relates(relation, "m.annotation", _ANNOTATION_KEYS):
        return False
    return is_short_key(relation.get("key"))


def is_short_key(key: object) -> bool:
    """A reaction key that cannot carry a message: 1 to `REACTION_KEY_MAX` characters, not
    blank, on one line, without control characters (a zero-width joiner and variation
    selectors stay allowed: emoji are built from them).
    """
    if not isinstance(key, str) or not 0 < len(key) <= REACTION_KEY_MAX or key.isspace():
        return False
    # `splitlines` knows every line break (\n, \r, \v, \f, U+0085, U+2028, U+2029, …).
    # (A trailing one leaves a single line, so the lines must be the key itself.)
    return key.splitlines() == [key] and not any(ord(c) < 0x20 or c == "\x7f" for c in key)


def _relates(relation: object, rel_type: str, allowed: frozenset[str]) -> bool:
    """`m.relates_to` of this type, to an event ID, and with no other keys (a reply's
    `m.in_reply_to` would make clients show the event as a message)."""
    if not isinstance(relation, Mapping) or not _only(relation, allowed):
        return False
    event_id = relation.get("event_id")
    return (
        relation.get("rel_type") == rel_type
        and isinstance(event_id, str)
        and event_id.startswith("$")
        and len(event_id) <= EVENT_ID_MAX
    )


def _are_answer_ids(answers: object) -> bool:
    if not isinstance(answers, list | tuple) or len(answers) > POLL_ANSWERS_MAX:
        return False
    return all(
        isinstance(a, str) and 0 < len(a) <= ANSWER_ID_MAX and a.isprintable() for a in answers
    )


def _only(mapping: Mapping[str, Any], allowed: frozenset[str]) -> bool:
    """No key but these. Synapse hands the content over as its own mapping, whose keys view
    is not a set, so the keys are looked up one by one (stopping at the first stranger)."""
    return all(key in allowed for key in mapping)
