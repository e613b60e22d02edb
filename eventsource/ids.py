"""Time-ordered event ids: UUIDv7 (RFC 9562), in order within a process.

An id is the Unix time in milliseconds (48 bits), the version, a 12-bit
counter, the variant and 62 random bits from the operating system. Within one
millisecond the counter counts up (RFC 9562, 6.2, method 1), so the ids of a
batch, and of every append in this process, increase in the order they were
made: a batch read back in id order comes back as it was given. The counter
starts each millisecond at a random value below 2048, leaving at least 2048
ids before it would overflow; then the time borrows the next millisecond.
Made on the append's hot path, so built without ``UUID.__init__``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Final
from uuid import UUID, SafeUUID

_lock: Final = threading.Lock()
_state = [0, 0]  # the last millisecond used, and its counter
_new: Final = object.__new__
_set: Final = object.__setattr__
_VERSION_7: Final = 0x7 << 76
_VARIANT: Final = 0b10 << 62
_RANDOM_62: Final = (1 << 62) - 1
_UNKNOWN: Final = SafeUUID.unknown


def uuid7() -> UUID:
    """A new UUIDv7, greater than every one this process made before."""
    now = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10))
    with _lock:
        last, counter = _state
        if now > last:
            last, counter = now, random >> 69  # 11 random bits: below 2048
        elif counter < 0xFFF:
            counter += 1
        else:
            last, counter = last + 1, 0
        _state[0], _state[1] = last, counter
    ident = _new(UUID)
    _set(
        ident, "int", (last << 80) | _VERSION_7 | (counter << 64) | _VARIANT | (random & _RANDOM_62)
    )
    _set(ident, "is_safe", _UNKNOWN)
    return ident


__all__ = ["uuid7"]
