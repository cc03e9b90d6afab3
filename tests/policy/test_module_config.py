"""The module's config, as Synapse hands it over from homeserver.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from school_policy import SchoolPolicy
from synapse.module_api.errors import ConfigError

BASE = {
    "server_name": "region.test",
    "bot": "@parta:region.test",
    "snapshot_path": "/srv/parta/var/policy/snapshot.json",
}


def test_defaults_are_the_documented_ones() -> None:
    config = SchoolPolicy.parse_config(BASE)
    assert config.snapshot_path == Path(BASE["snapshot_path"])
    assert (config.rules.pupil_peers, config.rules.adult_scope) == ("school", "region")
    assert (config.language, config.max_snapshot_age_s, config.reload_interval_s) == ("ru", 3600, 2)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"snapshot_path": ""}, "snapshot_path"),
        ({"server_name": None}, "server_name"),
        ({"bot": "parta"}, "bot"),
        ({"pupil_peers": "region"}, "pupil_peers must be one of school, class"),
        ({"adult_scope": "world"}, "adult_scope must be one of region, school"),
        ({"language": "de"}, "language must be one of ru, en"),
        ({"max_snapshot_age_s": 0}, "max_snapshot_age_s must be a positive number"),
        ({"reload_interval_s": "soon"}, "reload_interval_s must be a positive number"),
    ],
)
def test_a_bad_value_says_which_and_what_is_allowed(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        SchoolPolicy.parse_config({**BASE, **change})
