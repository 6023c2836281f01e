"""The Redis client for ``REDIS_URL`` and the one way the engine runs a script over a batch.

    >>> client = redis_client("redis://:secret@127.0.0.1:6379/0")      # or rediss://, ?cluster=true
    >>> flags = eval_script_batch(client, script, [(keys, args), ...])   # one round trip

A Redis Cluster client has the same API as a plain one, except that redis-py's cluster pipeline
refuses scripts (``eval_script_batch`` runs them one call each there) and a cluster's SCAN and
DBSIZE answer per node (``engine.storage.scanning``); ``is_cluster`` is what callers branch on.
Replies are text with the engine's clients (``decode_responses``); ``as_text``, ``text_hash`` and
``stream_entries`` also accept the bytes of a client opened without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError
from redis.retry import Retry


def is_cluster_url(url: str) -> bool:
    return parse_qs(urlsplit(url).query).get("cluster", ["false"])[0].lower() in ("1", "true", "yes")


def redis_client(url: str, socket_timeout: float = 1.0, socket_connect_timeout: float = 0.5) -> redis.Redis:
    """A client for ``REDIS_URL``: ``redis://``, ``rediss://`` (TLS), with AUTH in the URL, and
    Redis Cluster when the URL carries ``?cluster=true`` (the cluster client has the same API).
    A blocking reader (the event consumer) passes a ``socket_timeout`` longer than its block."""
    # Short timeouts: a Redis that hangs must turn into a fallback list fast, not a stuck request.
    # No automatic retries: a re-sent pipeline could append an event to the stream twice, and
    # the service's fallback is the better answer to a failed call anyway.
    common: dict[str, Any] = {"decode_responses": True, "socket_connect_timeout": socket_connect_timeout,
                              "socket_timeout": socket_timeout}
    if is_cluster_url(url):
        parts = urlsplit(url)
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "cluster"])
        plain = urlunsplit((parts.scheme, parts.netloc, "/", query, ""))
        # the cluster client would re-send a command after a timeout (its ERRORS_ALLOW_RETRY): a Lua
        # update that ran but answered late would then count twice; its redirections (MOVED/ASK)
        # are followed without this retry
        return RedisCluster.from_url(plain, retry=Retry(NoBackoff(), 0), **common)  # type: ignore[return-value]
    return redis.Redis.from_url(
        url, **common, health_check_interval=15, max_connections=256, retry=Retry(NoBackoff(), 0)
    )


def is_cluster(client: object) -> bool:
    """redis-py's cluster client refuses scripts inside pipelines; callers branch on this."""
    return isinstance(client, RedisCluster)


def eval_script_batch(
    client: redis.Redis, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
) -> list[Any]:
    """Run a registered script once per call, all in one pipelined round trip (on a cluster, where
    every call's keys must share a slot, one round trip per call).

    EVALSHA is queued directly: redis-py's ``Script`` inside a pipeline first sends SCRIPT EXISTS,
    an extra round trip per batch.  Calls answered NOSCRIPT (server restarted, SCRIPT FLUSH) did
    not run, so only those are retried after loading the script; the others ran and must not
    run twice.
    """
    if is_cluster(client):
        return [_eval_on_cluster(client, script, keys, args) for keys, args in calls]
    results: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for i in pending:
            keys, args = calls[i]
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        for i, result in zip(pending, pipe.execute(raise_on_error=False), strict=True):
            results[i] = result
        pending = [i for i in pending if isinstance(results[i], NoScriptError)]
        if not pending:
            break
        if attempt == 0:
            load_script(client, script, [calls[i][0] for i in pending])
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def _eval_on_cluster(client: redis.Redis, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """One EVALSHA outside a pipeline: redis-py's cluster pipeline blocks ``evalsha``, and routing
    the raw command through it asks the default node for the keys (COMMAND GETKEYS) on every call,
    which fails for every user while that one node is down."""
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        load_script(client, script, [keys])
        return client.evalsha(script.sha, len(keys), *keys, *args)


def eval_script(client: redis.Redis, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """One call of a registered script (``eval_script_batch`` of one): on a cluster it loads the
    script only where the call runs, where redis-py's ``Script`` would load it on every primary."""
    return eval_script_batch(client, script, [(keys, args)])[0]


def load_script(client: redis.Redis, script: Script, key_lists: Sequence[Sequence[str]]) -> None:
    """SCRIPT LOAD on the server, or on the cluster nodes that run calls with these keys: loading
    on every primary would fail while one of them is down, for the calls of the others too."""
    if not is_cluster(client) or not all(key_lists):
        client.script_load(script.script)
        return
    cluster: Any = client
    nodes = {node.name: node for node in (cluster.get_node_from_key(keys[0]) for keys in key_lists)}
    cluster.execute_command("SCRIPT LOAD", script.script, target_nodes=list(nodes.values()))


def subscriber(client: redis.Redis, attempt: int = 0) -> redis.client.PubSub:
    """A pub/sub connection.  A cluster broadcasts classic PUBLISH to every node, so any primary
    hears every message: each attempt takes the next one, and a listener whose node died
    subscribes again on a live one (redis-py would pick the channel's slot owner, the dead one)."""
    if not is_cluster(client):
        return client.pubsub()
    cluster: Any = client
    primaries = cluster.get_primaries()
    pubsub: redis.client.PubSub = cluster.pubsub(node=primaries[attempt % len(primaries)])
    return pubsub


def as_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def text_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    """An HGETALL reply as ``{field: value}`` text."""
    return {as_text(k): as_text(v) for k, v in raw.items()}


def stream_entries(
    reply: Iterable[tuple[str | bytes | None, Mapping[Any, Any] | None]] | None,
) -> list[tuple[str, dict[str, str]]]:
    """An XRANGE/XREVRANGE reply as ``(entry id, fields)`` text pairs.  The reply types allow an
    entry without id or fields (an entry trimmed while it was read); there is nothing to show of it."""
    return [(as_text(i), text_hash(f)) for i, f in reply or () if i is not None and f is not None]
