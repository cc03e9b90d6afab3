"""Which Synapse process serves which request: Synapse's worker documentation as data.

nginx's configuration is rendered from `ROUTES` (parta/topology.py decides which workers
stand behind each upstream); the test suite checks requests against it.
"""

from __future__ import annotations

from typing import Literal

# Upstream names in nginx; "main" is the main process.
Upstream = Literal[
    "synchrotron", "client_reader", "client_by_room", "federation_reader",
    "federation_send", "media", "streams", "background", "main",
]  # fmt: skip

_V = r"(api/v1|r0|v3|unstable)"
_V3 = r"(r0|v3|unstable)"

# (regular expression on the path, upstream), first match wins; everything else under
# /_matrix and /_synapse goes to the main process. Media first: its admin paths would
# otherwise match the room admin route.
ROUTES: tuple[tuple[str, Upstream], ...] = (
    (r"^/_matrix/media/", "media"),
    (r"^/_matrix/client/v1/media/", "media"),
    (r"^/_matrix/federation/v1/media/", "media"),
    (r"^/_synapse/media/", "media"),
    (r"^/_synapse/admin/v1/purge_media_cache$", "media"),
    (r"^/_synapse/admin/v1/room/.*/media.*$", "media"),
    (r"^/_synapse/admin/v1/user/.*/media.*$", "media"),
    (r"^/_synapse/admin/v1/media/.*$", "media"),
    (r"^/_synapse/admin/v1/quarantine_media/.*$", "media"),
    (r"^/_synapse/admin/v1/users/.*/media$", "media"),
    # Sync: one person's requests stay on one synchrotron (its caches are theirs).
    (r"^/_matrix/client/(r0|v3)/sync$", "synchrotron"),
    (r"^/_matrix/client/(api/v1|r0|v3)/events$", "synchrotron"),
    (r"^/_matrix/client/(api/v1|r0|v3)/initialSync$", "synchrotron"),
    (r"^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$", "synchrotron"),
    # The single-writer streams' endpoints, to their writer.
    (rf"^/_matrix/client/{_V}/rooms/.*/typing", "streams"),
    (rf"^/_matrix/client/{_V3}/sendToDevice/", "streams"),
    (rf"^/_matrix/client/{_V3}/.*/tags", "streams"),
    (rf"^/_matrix/client/{_V3}/.*/account_data", "streams"),
    (rf"^/_matrix/client/{_V3}/rooms/.*/receipt", "streams"),
    (rf"^/_matrix/client/{_V3}/rooms/.*/read_markers", "streams"),
    (rf"^/_matrix/client/{_V}/presence/", "streams"),
    (rf"^/_matrix/client/{_V}/pushrules/", "streams"),
    # The user directory's searches, to the worker that keeps it.
    (rf"^/_matrix/client/{_V3}/user_directory/search$", "background"),
    # Inbound federation transactions: one remote server's stay on one process.
    (r"^/_matrix/federation/v1/send/", "federation_send"),
    (
        r"^/_matrix/federation/(v1|v2)/(version|event|state|state_ids|backfill|"
        r"get_missing_events|publicRooms|query|make_join|make_leave|send_join|send_leave|"
        r"make_knock|send_knock|invite|event_auth|timestamp_to_event|"
        r"exchange_third_party_invite|user/devices|hierarchy)",
        "federation_reader",
    ),
    (r"^/_matrix/key/v2/query", "federation_reader"),
    # Pagination: one room's requests on one process.
    (rf"^/_matrix/client/{_V}/rooms/[^/]+/messages$", "client_by_room"),
    # Client reads, encryption, login, and event sending (the school policy module runs
    # in every process, so a refused invite is refused on whichever takes it).
    (
        rf"^/_matrix/client/{_V}/(createRoom|publicRooms|joined_rooms|search|"
        r"voip/turnServer)$",
        "client_reader",
    ),
    (
        rf"^/_matrix/client/{_V}/rooms/[^/]+/(joined_members|members|state|context/.*|"
        r"event/.*|aliases)$",
        "client_reader",
    ),
    (
        r"^/_matrix/client/(v1|unstable)/rooms/[^/]+/(relations/|hierarchy$|threads$)",
        "client_reader",
    ),
    (r"^/_matrix/client/v1/rooms/[^/]+/timestamp_to_event$", "client_reader"),
    (
        rf"^/_matrix/client/{_V3}/(account/3pid|account/whoami|account/deactivate|"
        r"capabilities|notifications|password_policy|register|register/available)$",
        "client_reader",
    ),
    (rf"^/_matrix/client/{_V3}/user/[^/]+/filter(/|$)", "client_reader"),
    (rf"^/_matrix/client/{_V}/directory/room/.*$", "client_reader"),
    (r"^/_matrix/client/versions$", "client_reader"),
    (rf"^/_matrix/client/{_V3}/keys/(query|changes|claim)$", "client_reader"),
    (rf"^/_matrix/client/{_V3}/room_keys/", "client_reader"),
    (rf"^/_matrix/client/{_V}/login$", "client_reader"),
    (rf"^/_matrix/client/{_V}/rooms/[^/]+/(redact|send|state/)", "client_reader"),
    (rf"^/_matrix/client/{_V}/rooms/[^/]+/(join|invite|leave|ban|unban|kick)$", "client_reader"),
    (rf"^/_matrix/client/{_V}/(join|knock|profile)/", "client_reader"),
)
