"""A Redis client that counts network round trips, to check batching without MONITOR.

Every request redis-py sends, a single command or a whole pipeline, goes out through one
``send_packed_command`` call on a connection, so counting those calls counts round trips.
"""

from __future__ import annotations

from typing import Any

import redis


class RoundTrips:
    def __init__(self) -> None:
        self.count = 0

    def reset(self) -> None:
        self.count = 0


def counting_client(url: str, decode_responses: bool = True) -> tuple[redis.Redis, RoundTrips]:
    trips = RoundTrips()

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            trips.count += 1
            super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection, decode_responses=decode_responses)
    client = redis.Redis(connection_pool=pool)
    client.ping()  # the connection handshake is not part of what a test measures
    trips.reset()
    return client, trips
