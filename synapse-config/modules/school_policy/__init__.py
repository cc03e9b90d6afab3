"""Parta's school policy for Synapse: no outsiders in school communities.

Loaded through `modules:` in homeserver.yaml (rendered by Parta):

    modules:
      - module: school_policy.SchoolPolicy
        config:
          server_name: region.example
          bot: "@parta:region.example"    # provisioning's bot: its invites are decided
          snapshot_path: /srv/parta/var/policy/snapshot.json   # written by provisioning
          language: ru               # of the messages people see when refused
          pupil_peers: school        # or "class": pupils reach only their classmates
          adult_scope: region        # or "school": adults reach only their school's people
          max_snapshot_age_s: 3600   # older than this, pupils are refused (fail closed)
          reload_interval_s: 2

The decisions are `rules.py`; this class only connects them to Synapse's callbacks.
`RegionAccountMapping` (sign_on.py) links the region's single sign-on to existing accounts.
"""

from __future__ import annotations

from school_policy.module import PolicyConfig, SchoolPolicy
from school_policy.sign_on import RegionAccountMapping, SignOnConfig

__all__ = ["PolicyConfig", "RegionAccountMapping", "SchoolPolicy", "SignOnConfig"]
