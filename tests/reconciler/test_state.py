"""The reconciler's power-levels value reads Synapse's content as `matrix.room_state` does."""

from __future__ import annotations

from provisioning.reconciler.state import PowerLevels, UserID

TEACHER, PUPIL = UserID("@olga:hs"), UserID("@ivan:hs")


def test_what_parta_writes_reads_back_the_same() -> None:
    desired = PowerLevels(
        users=((TEACHER, 50),), events_default=100, events=(("m.room.power_levels", 100),)
    )
    assert PowerLevels.from_content(desired.content()) == desired


def test_observed_levels_take_the_specs_defaults_and_old_rooms_strings() -> None:
    observed = PowerLevels.from_content({"users": {TEACHER: "50", PUPIL: True}, "kick": "75"})
    assert observed.users == ((TEACHER, 50),)  # `true` is no level: the planner repairs it
    assert (observed.kick, observed.invite, observed.state_default) == (75, 0, 50)
    assert (observed.events_default, observed.ban, observed.redact) == (0, 50, 50)
    assert observed.events == ()
