"""User dimensions recorded with an exposure (device, country, segment, ...) and read back per unit.

At exposure the user's dimensions are written beside the assignment (``EXPOSE``'s dimensions hash),
so a breakdown reads what the user *was* when exposed and needs no join with a users table later.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

MAX_VALUE_LENGTH = 64  # a dimension value is a label; longer text is cut
# the value of a user the users table does not list, or lists without that attribute: a cell of its own
UNKNOWN = "unknown"


class UserDimensions:
    """user id -> {dimension: value}, from a dataset's users table (``Dataset.users``).

    ``missing`` is what a user absent from the table gets (from a users table: ``UNKNOWN`` in every
    column, so the breakdown's cells still add up to the arms).
    """

    def __init__(self, table: Mapping[str, Mapping[str, str]] | None = None,
                 missing: Mapping[str, str] | None = None) -> None:
        self._table = {u: dict(v) for u, v in (table or {}).items()}
        self._missing = dict(missing or {})

    @classmethod
    def from_frame(cls, users: pd.DataFrame | None) -> UserDimensions:
        if users is None or users.empty or "user_id" not in users:
            return cls()
        columns = [c for c in users.columns if c != "user_id"]
        ids = users["user_id"].astype(str).tolist()
        values = {c: users[c].astype("string").fillna(UNKNOWN).str.slice(0, MAX_VALUE_LENGTH).tolist()
                  for c in columns}
        return cls({u: {c: values[c][i] for c in columns} for i, u in enumerate(ids)},
                   missing=dict.fromkeys(columns, UNKNOWN))

    def __call__(self, user_id: str) -> Mapping[str, str]:
        return self._table.get(user_id, self._missing)

    @property
    def names(self) -> list[str]:
        return sorted({k for v in self._table.values() for k in v})


def encode(dimensions: Mapping[str, str]) -> str:
    """As stored: ``name=value`` joined by tabs (tabs and '=' in names or values would break it)."""
    return "\t".join(f"{k}={str(v).replace(chr(9), ' ')}" for k, v in dimensions.items())


def decode(raw: str) -> dict[str, str]:
    out = {}
    for part in raw.split("\t"):
        name, sep, value = part.partition("=")
        if sep:
            out[name] = value
    return out
