"""with_resilience and a Resilience used as a decorator keep every signature exactly."""

from resilient import Resilience, ResiliencePolicies, ResiliencePolicy, with_resilience

policy = Resilience("typing", ResiliencePolicy(timeout=None))


@with_resilience("api", ResiliencePolicies.api(), timeout=5.0)
def fetch(url: str, *, retries: int = 3) -> bytes:
    return b""


@with_resilience("api", ResiliencePolicies.api(), timeout=5.0)
async def afetch(url: str, *, retries: int = 3) -> bytes:
    return b""


@policy
def positional(x: int, /, y: str = "", *args: float, **kwargs: object) -> list[int]:
    return [x]


@policy
async def aoptional(x: int) -> int | None:
    return None


class Service:
    @with_resilience("api", ResiliencePolicies.api(), timeout=5.0)
    def get(self, key: str) -> int:
        return 0

    @policy
    async def aget(self, key: str) -> int:
        return 0

    @with_resilience("api", ResiliencePolicies.api(), timeout=5.0)
    @classmethod
    def build(cls, size: int) -> "Service":
        return cls()

    @classmethod
    @with_resilience("api", ResiliencePolicies.api(), timeout=5.0)
    async def abuild(cls, size: int) -> "Service":
        return cls()

    @with_resilience("api", ResiliencePolicies.api(), timeout=5.0)
    @staticmethod
    def parse(raw: bytes) -> str:
        return ""

    @staticmethod
    @policy
    async def aparse(raw: bytes) -> str:
        return ""


reveal_type(fetch)  # N: Revealed type is "def (url: str, *, retries: int =) -> bytes"
reveal_type(afetch)  # N: Revealed type is "def (url: str, *, retries: int =) -> typing.Coroutine[Any, Any, bytes]"
reveal_type(positional)  # N: Revealed type is "def (int, y: str =, *args: float, **kwargs: object) -> list[int]"
reveal_type(aoptional)  # N: Revealed type is "def (x: int) -> typing.Coroutine[Any, Any, int | None]"

reveal_type(Service().get)  # N: Revealed type is "def (key: str) -> int"
reveal_type(Service.get)  # N: Revealed type is "def (self: with_resilience.Service, key: str) -> int"
reveal_type(Service().aget)  # N: Revealed type is "def (key: str) -> typing.Coroutine[Any, Any, int]"
reveal_type(Service.build)  # N: Revealed type is "def (size: int) -> with_resilience.Service"
reveal_type(Service().build)  # N: Revealed type is "def (size: int) -> with_resilience.Service"
reveal_type(Service.abuild)  # N: Revealed type is "def (size: int) -> typing.Coroutine[Any, Any, with_resilience.Service]"
reveal_type(Service.parse)  # N: Revealed type is "def (raw: bytes) -> str"
reveal_type(Service().parse)  # N: Revealed type is "def (raw: bytes) -> str"
reveal_type(Service.aparse)  # N: Revealed type is "def (raw: bytes) -> typing.Coroutine[Any, Any, str]"

reveal_type(policy.call(fetch, "u"))  # N: Revealed type is "bytes"


async def use() -> None:
    reveal_type(await policy.call_async(afetch, "u"))  # N: Revealed type is "bytes"
    reveal_type(await Service().aget("k"))  # N: Revealed type is "int"


fetch(1)  # E: Argument 1 to "fetch" has incompatible type "int"; expected "str"  [arg-type]
fetch("u", 3)  # E: Too many positional arguments for "fetch"  [call-arg]
Service().get(key=1)  # E: Argument "key" to "get" of "Service" has incompatible type "int"; expected "str"  [arg-type]
policy.call(fetch, "u", retries="3")  # E: Argument "retries" to "call" of "PolicyBase" has incompatible type "str"; expected "int"  [arg-type]
