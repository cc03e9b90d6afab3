"""The Synapse side: config parsing, callbacks, and turning decisions into 403 answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from synapse.module_api import NOT_SPAM, EventBase, ModuleApi
from synapse.module_api.errors import Codes, ConfigError, SynapseError

from school_policy import rules
from school_policy.directory import Directory
from school_policy.messages import Language, message
from school_policy.rules import Decision, Rules
from school_policy.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)

SpamAnswer = Literal["NOT_SPAM"] | tuple[Codes, dict[str, Any]]
_UNAVAILABLE = rules.refuse("policy_unavailable")
_MEMBER_STATES = ("join", "invite", "knock")


@dataclass(frozen=True)
class PolicyConfig:
    snapshot_path: Path
    bot: str  # provisioning's bot: its invites are provisioning's decisions
    rules: Rules
    language: Language = "ru"
    max_snapshot_age_s: float = 3600.0
    reload_interval_s: float = 2.0


def _choice(config: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = config.get(key, default)
    if value not in allowed:
        raise ConfigError(
            f"school_policy: {key} must be one of {', '.join(allowed)}, not {value!r}"
        )
    return str(value)


def _positive(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"school_policy: {key} must be a positive number of seconds, not {value!r}"
        )
    return float(value)


class SchoolPolicy:
    def __init__(self, config: PolicyConfig, api: ModuleApi) -> None:
        self._config = config
        self._api = api
        self._rules = config.rules
        self._store = SnapshotStore(config.snapshot_path, max_age_s=config.max_snapshot_age_s)
        self._store.reload_if_changed()  # at start-up, before the first request
        api.looping_background_call(
            self._reload,
            config.reload_interval_s * 1000,
            desc="school_policy_reload",
            run_on_all_instances=True,  # every worker decides from its own copy
        )
        api.register_spam_checker_callbacks(
            user_may_invite=self.user_may_invite,
            user_may_join_room=self.user_may_join_room,
            user_may_create_room=self.user_may_create_room,
            user_may_send_state_event=self.user_may_send_state_event,
            user_may_publish_room=self.user_may_publish_room,
            check_event_for_spam=self.check_event_for_spam,
            federated_user_may_invite=self.federated_user_may_invite,
        )
        api.register_third_party_rules_callbacks(check_event_allowed=self.check_event_allowed)

    @staticmethod
    def parse_config(config: Mapping[str, Any]) -> PolicyConfig:
        path = config.get("snapshot_path")
        if not isinstance(path, str) or not path:
            raise ConfigError(
                "school_policy: snapshot_path (provisioning's snapshot file) is required"
            )
        server_name = config.get("server_name")
        if not isinstance(server_name, str) or not server_name:
            raise ConfigError("school_policy: server_name (this homeserver's) is required")
        bot = config.get("bot")
        if not isinstance(bot, str) or not bot.startswith("@"):
            raise ConfigError("school_policy: bot (provisioning's user ID, @…) is required")
        return PolicyConfig(
            snapshot_path=Path(path),
            bot=bot,
            rules=Rules(
                server_name=server_name,
                pupil_peers=cast(
                    rules.PupilPeers, _choice(config, "pupil_peers", ("school", "class"), "school")
                ),
                adult_scope=cast(
                    rules.AdultScope, _choice(config, "adult_scope", ("region", "school"), "region")
                ),
            ),
            language=cast(Language, _choice(config, "language", ("ru", "en"), "ru")),
            max_snapshot_age_s=_positive(config, "max_snapshot_age_s", 3600.0),
            reload_interval_s=_positive(config, "reload_interval_s", 2.0),
        )

    async def _reload(self) -> None:
        await self._api.defer_to_thread(self._store.reload_if_changed)

    # --- deciding -------------------------------------------------------------------------

    def _directory(self, *users: str, room_id: str | None = None) -> Directory | Decision:
        """The directory to decide from, or the refusal when there is none to trust.

        With no snapshot at all, everything is refused. With one provisioning stopped
        updating, decisions about pupils (or rooms with pupils) are refused: a pupil's
        class may have changed since. Adults keep working.
        """
        d = self._store.directory
        if d is None:
            return _UNAVAILABLE
        if not self._store.fresh():
            room = d.rooms.get(room_id) if room_id is not None else None
            if any(d.is_pupil(u) for u in users) or (room is not None and room.has_pupils):
                return _UNAVAILABLE
        return d

    def _answer(self, decision: Decision, action: str, **context: str) -> SpamAnswer:
        if decision:
            return NOT_SPAM
        log.info("school policy refused %s: %s %s", action, decision.reason, context)
        return Codes.FORBIDDEN, {"error": message(decision.reason, self._config.language)}

    async def _members(self, room_id: str) -> list[str]:
        state = await self._api.get_room_state(room_id, [("m.room.member", None)])
        return [
            key for (_, key), event in state.items()
            if event.content.get("membership") in _MEMBER_STATES
        ]  # fmt: skip

    async def _member_event(self, user: str, room_id: str) -> EventBase | None:
        state = await self._api.get_room_state(room_id, [("m.room.member", user)])
        return state.get(("m.room.member", user))

    async def _membership(self, user: str, room_id: str) -> str | None:
        event = await self._member_event(user, room_id)
        return None if event is None else event.content.get("membership")

    async def _inviter(self, user: str, room_id: str) -> str | None:
        event = await self._member_event(user, room_id)
        if event is None or event.content.get("membership") != "invite":
            return None
        return str(event.sender)

    async def _decide_in_room(
        self,
        room_id: str,
        users: tuple[str, ...],
        decide: Callable[[Directory, list[str]], Decision],
    ) -> Decision:
        d = self._directory(*users, room_id=room_id)
        if isinstance(d, Decision):
            return d
        members = [] if room_id in d.rooms else await self._members(room_id)
        if not self._store.fresh() and any(d.is_pupil(m) for m in members):
            return _UNAVAILABLE
        return decide(d, members)

    # --- spam-checker callbacks (Synapse skips them for server admins, such as the bot) -----

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> SpamAnswer:
        decision = await self._decide_in_room(
            room_id, (inviter, invitee),
            lambda d, members: rules.may_invite(d, self._rules, inviter, invitee, room_id, members),
        )  # fmt: skip
        d = self._store.directory
        knocked = (
            not decision
            and decision.reason != _UNAVAILABLE.reason
            and d is not None
            and room_id in d.rooms
            and await self._membership(invitee, room_id) == "knock"
        )
        if knocked and d is not None:  # answering a join request: the invitee knocked here
            decision = rules.may_invite(
                d, self._rules, inviter, invitee, room_id, (), invitee_knocked=True
            )
        return self._answer(decision, "invite", inviter=inviter, invitee=invitee, room=room_id)

    async def user_may_join_room(self, user: str, room_id: str, is_invited: bool) -> SpamAnswer:
        if is_invited and await self._inviter(user, room_id) == self._config.bot:
            # Placed by provisioning (the admin join accepts the bot's invite): provisioning's
            # rules decided, the same rules as these, from the database itself.
            return NOT_SPAM
        decision = await self._decide_in_room(
            room_id,
            (user,),
            lambda d, members: rules.may_join(d, self._rules, user, room_id, members),
        )
        return self._answer(decision, "join", user=user, room=room_id)

    async def user_may_create_room(self, user: str, request: dict[str, Any]) -> SpamAnswer:
        invitees = tuple(str(u) for u in request.get("invite") or ())
        d = self._directory(user, *invitees)
        decision = (
            d if isinstance(d, Decision) else rules.may_create_room(d, self._rules, user, request)
        )
        return self._answer(decision, "createRoom", user=user)

    async def user_may_send_state_event(
        self, user_id: str, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> SpamAnswer:
        d = self._store.directory
        decision = (
            _UNAVAILABLE
            if d is None
            else rules.may_send_state(d, self._rules, user_id, room_id, event_type, state_key)
        )
        if decision:
            return NOT_SPAM
        log.info("school policy refused state: %s %s %s", decision.reason, user_id, event_type)
        # Synapse drops the fields of this callback's answer (its message would be "You are
        # not permitted to send the state event"); a SynapseError raised here reaches the
        # client as it is, so the person reads the reason.
        raise SynapseError(403, message(decision.reason, self._config.language), Codes.FORBIDDEN)

    async def user_may_publish_room(self, user_id: str, room_id: str) -> SpamAnswer:
        d = self._store.directory
        decision = (
            _UNAVAILABLE if d is None else rules.may_publish(d, self._rules, user_id, room_id)
        )
        return self._answer(decision, "publish", user=user_id, room=room_id)

    async def check_event_for_spam(self, event: EventBase) -> SpamAnswer:
        if event.is_state():
            if event.type == "m.room.member" and not rules.is_local(self._rules, event.sender):
                return await self._remote_membership(event)
            return NOT_SPAM  # state is decided by the state and membership callbacks
        d = self._store.directory
        if d is None or event.room_id not in d.rooms:
            return NOT_SPAM  # only channels are restricted, and only the snapshot knows them
        decision = rules.may_post(
            d, self._rules, event.sender, event.room_id, event.type, event.content
        )
        return self._answer(decision, "post", sender=event.sender, room=event.room_id)

    async def _remote_membership(self, event: EventBase) -> SpamAnswer:
        """A join from another server that did not ask us to make it (`make_join`, which
        `check_event_allowed` refuses): Synapse runs no third-party rule on the `send_join`
        itself, but asks the spam checker about every event it receives over federation and
        soft-fails what is refused, so such a join never enters the room's state.
        """
        if event.content.get("membership") not in ("join", "knock"):
            return NOT_SPAM
        d = self._directory(room_id=event.room_id)
        if isinstance(d, Decision):
            decision = d
        else:
            members = [] if event.room_id in d.rooms else await self._members(event.room_id)
            decision = rules.may_join_from_another_server(d, self._rules, event.room_id, members)
        return self._answer(decision, "remote join", user=event.sender, room=event.room_id)

    async def federated_user_may_invite(self, event: EventBase) -> SpamAnswer:
        invitee = str(event.state_key)
        d = self._directory(invitee)
        decision = (
            d
            if isinstance(d, Decision)
            else rules.may_be_invited_from_another_server(d, self._rules, invitee)
        )
        return self._answer(decision, "remote invite", inviter=event.sender, invitee=invitee)

    # --- third-party rules: what has no spam-checker callback (knocks, remote joins) -------

    async def check_event_allowed(
        self, event: EventBase, state_events: Mapping[tuple[str, str], EventBase]
    ) -> tuple[bool, dict[str, Any] | None]:
        if event.type != "m.room.member":
            return True, None
        membership = event.content.get("membership")
        local = rules.is_local(self._rules, event.sender)
        if membership == "knock" and local:
            d = self._directory(event.sender, room_id=event.room_id)
            decision = (
                d
                if isinstance(d, Decision)
                else rules.may_knock(
                    d, self._rules, event.sender, event.room_id, event.content.get("reason")
                )
            )
        elif membership in ("join", "knock") and not local:
            d = self._directory(room_id=event.room_id)
            if isinstance(d, Decision):
                decision = d
            else:
                members = [
                    key for (kind, key), state in state_events.items()
                    if kind == "m.room.member" and state.content.get("membership") in _MEMBER_STATES
                ]  # fmt: skip
                decision = rules.may_join_from_another_server(
                    d, self._rules, event.room_id, members
                )
        else:
            return True, None
        if decision:
            return True, None
        log.info("school policy refused %s: %s %s", membership, decision.reason, event.sender)
        if local:
            # A SynapseError raised here reaches the client as it is (Synapse relies on it),
            # so the person reads why, in the region's language.
            raise SynapseError(
                403, message(decision.reason, self._config.language), Codes.FORBIDDEN
            )
        return False, None
