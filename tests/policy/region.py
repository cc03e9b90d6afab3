"""A small region as a policy snapshot: two schools, three classes, the people around them."""

from __future__ import annotations

import json
from typing import Any

from school_policy.directory import Directory, load_directory
from school_policy.rules import Rules

SERVER = "region.test"


def u(name: str) -> str:
    return f"@{name}:{SERVER}"


SNAPSHOT: dict[str, Any] = {
    "format": 1,
    "bot": u("parta"),
    "region_admins": [u("admin")],
    "schools": {
        "1": {"admins": [u("director")], "teachers": [u("t5a"), u("t5b"), u("subj5a")]},
        "2": {"admins": [], "teachers": [u("t2")]},
    },
    "classes": {
        "51": {
            "school": 1,
            "teachers": [u("t5a"), u("subj5a")],
            "class_teachers": [u("t5a")],
            "pupils": [u("p5a1"), u("p5a2")],
        },
        "52": {"school": 1, "teachers": [u("t5b")], "pupils": [u("p5b1")]},
        "61": {"school": 2, "teachers": [u("t2")], "pupils": [u("p2")]},
    },
    "unplaced_pupils": [u("newbie")],
    "parents": {
        u("par5a1"): [u("p5a1")],
        u("par5a2"): [u("p5a2")],
        u("par5b1"): [u("p5b1")],
        u("par2"): [u("p2")],
        u("parnew"): [u("newbie")],
    },
    "rooms": {
        "!space1": {"kind": "school_space", "school": 1, "class": None},
        "!ann1": {"kind": "announcements", "school": 1, "class": None},
        "!staff1": {"kind": "staff_room", "school": 1, "class": None},
        "!mat1": {"kind": "school_materials", "school": 1, "class": None},
        "!events1": {"kind": "school_events", "school": 1, "class": None},
        "!cspace51": {"kind": "class_space", "school": 1, "class": 51},
        "!chat51": {"kind": "class_chat", "school": 1, "class": 51},
        "!chan51": {"kind": "class_channel", "school": 1, "class": 51},
        "!parents51": {"kind": "class_parents", "school": 1, "class": 51},
        "!fed": {"kind": "class_chat", "school": 1, "class": 51, "federated": True},
    },
}


def directory() -> Directory:
    return load_directory(json.dumps(SNAPSHOT))


RULES = Rules(server_name=SERVER)
