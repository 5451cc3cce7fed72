"""Benchmark cases of the httpx transports (registered into ``cases.CASES`` on import).

One GET through an httpx client whose transport answers at once with a small
body that streams (as httpx's own transports' bodies do), read to the end as
``client.get`` reads it. The floor is the same client on the bare transport;
``resilient`` wraps it in ``ResilientTransport`` / ``AsyncResilientTransport``
with the ``api()`` preset: retry, the host's breaker and bulkhead, a timeout.
The host's breaker and bulkhead judge a request when its body ends, so
these cases measure that too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from .cases import case

__all__: list[str] = []

_BODY = b'{"price":1}\n'
_URL = "http://svc.test/quote"


def _transports() -> tuple[Any, Any]:
    import httpx

    class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield _BODY

        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield _BODY

    class Answer(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, stream=Body())

    class AsyncAnswer(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, stream=Body())

    return Answer(), AsyncAnswer()


def _get(resilient: bool) -> Any:
    import httpx

    transport = _transports()[0]
    if resilient:
        from resilient import Registry, ResiliencePolicies
        from resilient.http import ResilientTransport

        transport = ResilientTransport(
            ResiliencePolicies.api(), transport=transport, registry=Registry()
        )
    http = httpx.Client(transport=transport)

    def call(x: int) -> Any:
        http.get(_URL)
        return x

    return call


def _aget(resilient: bool) -> Any:
    import httpx

    transport = _transports()[1]
    if resilient:
        from resilient import Registry, ResiliencePolicies
        from resilient.http import AsyncResilientTransport

        transport = AsyncResilientTransport(
            ResiliencePolicies.api(), transport=transport, registry=Registry()
        )
    http = httpx.AsyncClient(transport=transport)

    async def call(x: int) -> Any:
        await http.get(_URL)
        return x

    return call


case("sync", "http get", "floor: httpx", peer="httpx")(lambda: _get(False))
case("async", "http get", "floor: httpx", peer="httpx")(lambda: _aget(False))
case("sync", "http get", "resilient", peer="httpx", also=("sync http get: floor: httpx",))(
    lambda: _get(True)
)
case("async", "http get", "resilient", peer="httpx", also=("async http get: floor: httpx",))(
    lambda: _aget(True)
)
