"""with_hedging and a Hedging used as a decorator keep every signature exactly."""

from resilient import Hedging, HedgingConfig, with_hedging

policy = Hedging(HedgingConfig(0.1, max_hedges=2))


@with_hedging(0.1)
def fetch(url: str, *, retries: int = 3) -> bytes:
    return b""


@with_hedging(0.1, max_hedges=2, on=(ConnectionError,))
async def afetch(url: str, *, retries: int = 3) -> bytes:
    return b""


class Service:
    @policy
    async def aget(self, key: str) -> int:
        return 0


reveal_type(fetch)  # N: Revealed type is "def (url: str, *, retries: int =) -> bytes"
reveal_type(afetch)  # N: Revealed type is "def (url: str, *, retries: int =) -> typing.Coroutine[Any, Any, bytes]"
reveal_type(Service().aget)  # N: Revealed type is "def (key: str) -> typing.Coroutine[Any, Any, int]"
reveal_type(policy.call(fetch, "u"))  # N: Revealed type is "bytes"


async def use() -> None:
    reveal_type(await policy.call_async(afetch, "u"))  # N: Revealed type is "bytes"
