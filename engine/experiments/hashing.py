"""Deterministic buckets in [0, 1) for assignment.

``bucket(salt, unit)`` is the first 8 bytes of BLAKE2b over ``"<salt>:<unit>"`` read as an unsigned
integer and divided by 2**64.  Python's ``hash()`` is salted per process (PYTHONHASHSEED), so two
API workers would disagree on a user's variant; a cryptographic digest is stable everywhere and its
output bits are uniform and independent across salts, which the tests check with chi-square.
"""

from __future__ import annotations

import hashlib

_SCALE = float(2**64)


def bucket(salt: str, unit: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE
