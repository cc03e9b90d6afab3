"""What a service holds from its start leaves the cyclic collector; later garbage does not."""

from __future__ import annotations

import gc
import weakref

from foundation.memory import freeze_startup_objects


class Node:
    """Something that refers to itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_startup_objects_are_frozen_and_later_cycles_still_collected() -> None:
    kept = Node()
    try:
        frozen = freeze_startup_objects()
        assert frozen == gc.get_freeze_count() > 1000  # the interpreter's and pytest's objects
        assert not any(obj is kept for obj in gc.get_objects())  # out of every collection
        later = Node()
        gone = weakref.ref(later)
        del later
        gc.collect()
        assert gone() is None  # made after the freeze: collected as usual
    finally:
        gc.unfreeze()
