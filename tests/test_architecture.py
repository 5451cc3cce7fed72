"""The architecture the docs describe is the one in the tree: every module is
on the map, every layer keeps the layer protocol, and each layer costs one
frame per call."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import resilient
from resilient import (
    Bulkhead,
    BulkheadConfig,
    CircuitBreaker,
    Fallback,
    Registry,
    with_bulkhead,
    with_chaos,
    with_circuit_breaker,
    with_fallback,
    with_hedging,
    with_rate_limit,
    with_resilience,
    with_retry,
    with_timeout,
)
from resilient._execution.compose import Layer, Streaming, compose
from resilient._execution.policy_base import PolicyBase

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "resilient"
MAP = (ROOT / "docs" / "architecture.md").read_text()


# -- the map ------------------------------------------------------------------


def _mapped_modules() -> set[str]:
    """Every ``resilient/...py`` path the tree in docs/architecture.md names."""
    tree = MAP.split("## ", 1)[0]
    found: set[str] = set()
    folders: list[tuple[int, str]] = []
    for line in tree.splitlines():
        match = re.match(r"^( {4,})(\S+)", line)
        if match is None:
            continue
        indent, entry = len(match[1]), match[2]
        while folders and folders[-1][0] >= indent:
            folders.pop()
        prefix = "".join(name for _, name in folders)
        if entry.endswith("/"):
            folders.append((indent, entry))
            # A folder described in prose names its modules after it.
            rest = line[match.end() :]
            for name in re.findall(r"([A-Za-z_]+\.py)", rest):
                found.add(prefix + entry + name)
        elif entry.endswith(".py"):
            found.add(prefix + entry)
    # Prose continuation lines of a folder entry.
    for folder, body in re.findall(r"^ {6}(\w+/) +(.*(?:\n {28}.*)*)", tree, re.M):
        for name in re.findall(r"([A-Za-z_]+\.py)", body):
            found.add(f"resilient/{folder}{name}")
    return found


def _real_modules() -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" or path.parent == PACKAGE
    }


def test_every_module_is_on_the_architecture_map() -> None:
    assert sorted(_real_modules() - _mapped_modules()) == []


def test_the_map_names_no_module_that_is_gone() -> None:
    assert sorted(_mapped_modules() - _real_modules()) == []


def test_every_sub_package_says_what_it_holds() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring, f"{init.relative_to(ROOT)} has no docstring"


# -- private names ------------------------------------------------------------

# The members of the layer protocol (docs/architecture.md): every policy
# implements them and the execution layer calls them.
LAYER_PROTOCOL = {
    "_kind",
    "_listeners",
    "_own_gate",
    "_event_name",
    "_stats_for",
    "_wrap_sync",
    "_wrap_async",
    "_stream",
    "_astream",
    "_meters",
    "_run",
    "_arun",
}

# NamedTuple's API: public, though it starts with an underscore.
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_field_defaults", "_make"}

# Reads of another module's private names that stay: at most five, each read
# in one module only (the others import it from there), with its reason.
ALLOWED = {
    # asyncio's running loop, None when there is none: no RuntimeError to
    # raise and catch on the trio and thread paths (measured, see the module).
    "asyncio._get_running_loop": "resilient/_runtime/async_backend.py",
    # The task running on a loop without asyncio.current_task()'s Python
    # wrapper on 3.11 (measured, see the module).
    "asyncio.tasks._current_tasks": "resilient/_runtime/async_backend.py",
}
MAX_ALLOWED = 5


def _concept(module: Path) -> Path:
    rel = module.relative_to(PACKAGE)
    return PACKAGE / rel.parts[0] if len(rel.parts) > 1 else module


def _private_reads() -> list[str]:
    defined: dict[Path, set[str]] = {}
    trees = {path: ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}
    for path, tree in trees.items():
        names = defined.setdefault(_concept(path), set())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    found = []
    for path, tree in trees.items():
        own = defined[_concept(path)]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                target = path.parent
                for _ in range(node.level - 1):
                    target = target.parent
                if _concept(target / "x.py") == _concept(path) and node.module is None:
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        module = target / (node.module or "").replace(".", "/")
                        if module.is_dir() or (module / alias.name).is_dir():
                            continue
                        if (module / f"{alias.name}.py").exists():
                            continue  # a private module, imported whole
                        if _concept(module.with_suffix(".py")) != _concept(path):
                            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name}")
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            if not name.startswith("_") or name.startswith("__") or name in LAYER_PROTOCOL:
                continue
            if name in NAMEDTUPLE_API:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if name in own:
                continue
            text = ast.unparse(node)
            if ALLOWED.get(text) != str(path.relative_to(ROOT)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    return found


def test_no_module_reads_another_concepts_private_names() -> None:
    assert _private_reads() == []


def test_the_private_reads_that_stay_are_few_and_each_in_one_module() -> None:
    assert len(ALLOWED) <= MAX_ALLOWED
    for text, module in ALLOWED.items():
        source = (ROOT / module).read_text()
        reads = [
            node.lineno
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and ast.unparse(node) == text
        ]
        assert reads, f"{text} is allowed in {module}, which no longer reads it"
        # The reason is written where it is read: a comment just above.
        lines = source.splitlines()
        at = reads[0] - 1
        assert any(line.lstrip().startswith("#") for line in lines[at - 3 : at]), (module, text)


# -- import circles ---------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every module of the package and the modules of the package it
    imports: at the top, in a function (a lazy import is still an import),
    under ``TYPE_CHECKING`` (a type-only import is still a dependency), or
    by ``importlib.import_module`` (a module that calls it with a computed
    name imports every module named by a string in it). Importing
    ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``: those edges are
    how packages work, not a dependency of the module's, and are left out
    (every package would otherwise be a circle with its children)."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]

        def absolute(module: str, level: int, package: str = package) -> str:
            if not level:
                return module
            base = package.split(".")[: len(package.split(".")) - (level - 1)]
            return ".".join([*base, module] if module else base)

        def target(module: str) -> str | None:
            # The module itself, or the deepest package of the project holding it.
            while module and module not in paths:
                module = module.rpartition(".")[0]
            return module or None

        edges = graph.setdefault(name, set())
        tree = ast.parse(path.read_text())
        dynamic = False
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = absolute(node.module or "", node.level)
                for alias in node.names:
                    found = target(f"{source}.{alias.name}")
                    if found is not None:
                        edges.add(found)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    found = target(alias.name)
                    if found is not None:
                        edges.add(found)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "import_module"
                and node.args
            ):
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found = target(absolute(*_relative(first.value)))
                    if found is not None:
                        edges.add(found)
                else:
                    dynamic = True
        if dynamic:
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    text = node.value
                    # A module's name: "resilient.x.y", or relative (".x.y").
                    if re.fullmatch(r"(?:resilient|)(?:\.\w+)+", text):
                        found = target(absolute(*_relative(text)))
                        if found is not None:
                            edges.add(found)
        edges.discard(name)
    return graph


def _relative(text: str) -> tuple[str, int]:
    stripped = text.lstrip(".")
    return stripped, len(text) - len(stripped)


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_sees_lazy_type_only_and_importlib_imports() -> None:
    graph = _imports()
    # Type-only (under TYPE_CHECKING).
    assert "resilient.circuit_breaker.storage" in graph["resilient.circuit_breaker.config"]
    # Inside a function, kept lazy for import time.
    assert "resilient._registry.document" in graph["resilient.config"]
    # By importlib, from a table of names (the package's lazy attributes).
    assert "resilient.retry.attempts" in graph["resilient"]
    assert "resilient.http.errors" in graph["resilient._runtime.mapping"]


def test_no_import_circles_type_only_ones_included() -> None:
    assert _circles(_imports()) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# -- the layer protocol -----------------------------------------------------------


def _layers() -> dict[str, Callable[[], Any]]:
    registry = Registry()
    return {
        "circuit_breaker": lambda: CircuitBreaker("arch"),
        "retry": lambda: resilient.Retry(),
        "timeout": lambda: resilient.Timeout(1.0),
        "bulkhead": lambda: Bulkhead("arch", BulkheadConfig(max_concurrent=2)),
        "fallback": lambda: Fallback(value=0),
        "rate_limit": lambda: resilient.RateLimiter("arch", rate=1000.0),
        "hedging": lambda: resilient.Hedging(resilient.HedgingConfig(delay=1.0)),
        "chaos": lambda: resilient.Chaos(),
        "failover": lambda: resilient.Failover("arch", []),
        "keyed": lambda: registry,  # replaced below: a keyed group is built by its decorator
    }


LAYERS = {name: make for name, make in _layers().items() if name != "keyed"}


def _parameters(fn: Callable[..., Any]) -> list[tuple[str, Any]]:
    return [
        (p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.name != "self"
    ]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_keeps_the_layer_protocol(name: str) -> None:
    layer = LAYERS[name]()
    assert isinstance(layer, PolicyBase)
    for member in ("_kind", "_listeners", "_own_gate", "_event_name", "_stats_for"):
        assert hasattr(layer, member), member
    for member in ("_wrap_sync", "_wrap_async"):
        assert _parameters(getattr(layer, member)) == _parameters(getattr(Layer, member))
    for member in ("_stream", "_astream"):  # optional (compose.Streaming)
        if hasattr(layer, member):
            names = [name for name, _ in _parameters(getattr(layer, member))]
            assert names == [name for name, _ in _parameters(getattr(Streaming, member))]
    assert isinstance(layer._kind, str)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_runs_in_a_chain_sync_and_async(name: str) -> None:
    layer = LAYERS[name]()

    def double(x: int) -> int:
        return 2 * x

    async def adouble(x: int) -> int:
        return 2 * x

    assert compose(layer, [layer], double, is_async=False)(21) == 42
    assert asyncio.run(compose(layer, [layer], adouble, is_async=True)(21)) == 42


# -- one frame per layer ----------------------------------------------------------


def _frames_to(marker: str) -> int:
    """Frames from the protected function up to ``marker``'s (or the thread's top)."""
    frame = sys._getframe(1)
    count = 0
    while frame is not None and frame.f_code.co_name != marker:
        count += 1
        frame = frame.f_back
    return count


def _caller(fn: Callable[[], int]) -> int:
    return fn()


async def _acaller(fn: Callable[[], Any]) -> int:
    return int(await fn())


DECORATORS: dict[str, Callable[[], Any]] = {
    "circuit_breaker": lambda: with_circuit_breaker(CircuitBreaker("frames")),
    "retry": lambda: with_retry(),
    "timeout": lambda: with_timeout(1.0),
    "bulkhead": lambda: with_bulkhead(Bulkhead("frames", BulkheadConfig(max_concurrent=2))),
    "fallback": lambda: with_fallback(0),
    "rate_limit": lambda: with_rate_limit("frames", rate=1000.0),
    "hedging": lambda: with_hedging(1.0),
    "chaos": lambda: with_chaos(),
    "failover": lambda: resilient.with_failover("frames", []),
    "keyed": lambda: with_circuit_breaker("frames-keyed", key=lambda: "k"),
    "stack": lambda: with_resilience("frames-stack", timeout=None),
    "stack_with_bulkhead": lambda: with_resilience(
        "frames-stack-b", timeout=None, bulkhead=BulkheadConfig(max_concurrent=2)
    ),
}

# The function's own frame plus one per layer. A sync timeout and a sync
# hedge run the call on a worker thread: the count is the worker's stack.
# A per-key breaker is one frame: it picks the key's breaker and runs that
# breaker's own path, inlined by scripts/unasync.py (no hand-made copy).
SYNC_FRAMES = {
    "circuit_breaker": 2,
    "retry": 2,
    "timeout": 5,
    "bulkhead": 2,
    "fallback": 2,
    "rate_limit": 2,
    "hedging": 6,
    "chaos": 3,
    "failover": 2,
    "keyed": 2,
    "stack": 3,
    "stack_with_bulkhead": 4,
}
ASYNC_FRAMES = {
    "circuit_breaker": 2,
    "retry": 2,
    "timeout": 2,
    "bulkhead": 2,
    "fallback": 2,
    "rate_limit": 2,
    "hedging": 2,
    "chaos": 2,
    "failover": 2,
    "keyed": 2,
    "stack": 3,
    "stack_with_bulkhead": 4,
}


@pytest.fixture(autouse=True)
def _fresh_registry() -> Any:
    with resilient.registry.isolated():
        yield


@pytest.mark.parametrize("name", sorted(DECORATORS))
def test_each_layer_adds_one_frame_per_sync_call(name: str) -> None:
    @DECORATORS[name]()
    def protected() -> int:
        return _frames_to("_caller")

    assert _caller(protected) == SYNC_FRAMES[name]


# Layers whose async closure only forwards (a plain function returning the
# awaitable): outermost, before Python 3.12 (which can mark a plain function
# as a coroutine function), an ``async def`` entry awaits it, so that what
# they decorate stays a coroutine function: one frame more.
FORWARDERS = {"chaos", "failover", "hedging", "timeout"}


@pytest.mark.parametrize("name", sorted(DECORATORS))
def test_each_layer_adds_one_frame_per_async_call(name: str) -> None:
    @DECORATORS[name]()
    async def protected() -> int:
        return _frames_to("_acaller")

    entry = 1 if name in FORWARDERS and sys.version_info < (3, 12) else 0
    assert asyncio.run(_acaller(protected)) == ASYNC_FRAMES[name] + entry


@pytest.mark.parametrize("name", sorted(DECORATORS))
def test_every_layer_keeps_a_coroutine_function_a_coroutine_function(name: str) -> None:
    async def protected() -> int:
        return 7

    decorated = DECORATORS[name]()(protected)
    assert inspect.iscoroutinefunction(decorated)
    assert asyncio.iscoroutinefunction(decorated)
    assert asyncio.run(decorated()) == 7
