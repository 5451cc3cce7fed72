"""A Redis Cluster client that may start while nodes are down.

``redis.RedisCluster`` discovers the cluster when it is made, and raises
when it cannot: a service would fail to start because Redis is down.
``LazyCluster`` makes the real client on first use instead, and again on
every use until that works; until then each command raises
``redis.ConnectionError`` (Redis is unreachable: breakers decide on local
state). Every client it makes gives up after its socket timeout and never
retries: the caller decides what to do next.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import redis
from redis._parsers.encoders import Encoder
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

__all__ = ["LazyCluster", "cluster_client"]


def cluster_client(url: str, timeout: float) -> Any:
    """A client of the cluster at ``url`` (``redis://`` or ``rediss://``,
    any node), with no retries; ``LazyCluster`` when no node answers now."""
    # A bad URL is the caller's mistake: raised now, whatever the network says.
    redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    lazy = LazyCluster(url, timeout)
    try:
        return lazy.client()
    except (RedisError, RedisClusterException, OSError):
        return lazy


class LazyCluster:
    """Stands for a ``redis.RedisCluster`` until one can be made."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self._timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from redis.cluster import RedisCluster

                try:
                    self._client = RedisCluster.from_url(
                        self.url,
                        socket_timeout=self._timeout,
                        socket_connect_timeout=self._timeout,
                        retry=Retry(NoBackoff(), 0),
                    )
                except RedisClusterException as exc:
                    raise redis.ConnectionError(f"Redis Cluster unreachable: {exc}") from exc
            return self._client

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "connection_pool":  # a cluster has none
            raise AttributeError(name)
        return getattr(self.client(), name)

    def register_script(self, script: str) -> Script:
        return Script(cast(Any, self), script)  # connects when it runs, not now

    def get_encoder(self) -> Any:
        client = self._client
        if client is not None:
            return client.get_encoder()
        return Encoder("utf-8", "strict", False)  # type: ignore[no-untyped-call]

    def get_nodes(self) -> list[Any]:
        client = self._client
        return [] if client is None else list(client.get_nodes())

    def close(self) -> None:
        client = self._client
        if client is not None:
            client.close()
