"""The sync twins generated from their async source (scripts/unasync.py) are
current, and the generator writes what it says: a region right before each
async source, the same code but for the async words."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "unasync.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["unasync"] = module
    spec.loader.exec_module(module)
    return module


unasync = _script()


def test_generated_sync_code_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, (
        "the generated sync twins differ from their async source "
        "(edit the async code, never a generated region); regenerate them with:\n"
        "    python scripts/unasync.py\n" + done.stderr
    )


def test_each_twin_is_generated_right_before_its_async_source() -> None:
    for path, (qualnames, _names) in unasync.TWINS.items():
        text = (ROOT / path).read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        for qualname in qualnames:
            node = unasync._find(tree, qualname)
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            before = [line.strip() for line in lines[:first] if line.strip()]
            assert before[-1] == unasync.END, (path, qualname, before[-1])
            begin = max(i for i, line in enumerate(before) if line.startswith("# --- generated"))
            assert before[begin] == unasync.BEGIN.format(node.name), (path, qualname)
            generated = next(line for line in before[begin + 1 :] if not line.startswith("@"))
            assert generated.startswith(("def ", "class ")), (path, qualname, generated)
            assert "async" not in generated
            assert "await" not in generated


def test_the_generated_regions_hold_no_async_code() -> None:
    for path in unasync.TWINS:
        inside = False
        for number, line in enumerate((ROOT / path).read_text().splitlines(), 1):
            if line.strip().startswith("# --- generated from "):
                inside = True
            elif line.strip() == unasync.END:
                inside = False
            elif inside:
                words = line.split("#")[0].split()
                assert "await" not in words, f"{path}:{number}"
                assert "async" not in words, f"{path}:{number}"
        assert not inside, f"{path}: a region without its end"


def test_replacements_are_whole_words_and_syntax() -> None:
    source = [
        "    async def _wrap_async(self, fn: AsyncFn[R]) -> AsyncFn[R]:\n",
        "        arun, arunner = self._arun, self.arunner\n",
        "        async with lock:\n",
        "            async for item in await aiter_of(stream):\n",
        "                await aclose(item)\n",
        "        return await meter.atimed(start, arun)  # type: ignore[union-attr]\n",
    ]
    assert unasync.unasync_lines(source, {"arunner": "runner"}) == [
        "    def _wrap_sync(self, fn: SyncFn[R]) -> SyncFn[R]:\n",
        "        run, runner = self._run, self.runner\n",
        "        with lock:\n",
        "            for item in aiter_of(stream):\n",
        "                close(item)\n",
        "        return meter.timed(start, run)  # type: ignore[union-attr,no-any-return]\n",
    ]


def test_a_statement_marked_async_only_is_left_out() -> None:
    text = (
        "class A:\n"
        "    async def _aenter(self) -> None:\n"
        "        if self.polled:  # unasync: async only\n"
        "            await self.poll()\n"
        "        await self._aadmit()\n"
    )
    module = "resilient/x.py"
    unasync.TWINS[module] = (["A._aenter"], {"_aenter": "_enter"})
    try:
        generated = unasync.generate(text, module)
    finally:
        del unasync.TWINS[module]
    assert generated == (
        "class A:\n"
        "    # --- generated from _aenter by scripts/unasync.py; do not edit ---\n"
        "    def _enter(self) -> None:\n"
        "        self._admit()\n"
        "\n"
        "    # --- end generated ---\n"
        "\n" + text.removeprefix("class A:\n")
    )
    # Written again, the region is replaced, not added.
    unasync.TWINS[module] = (["A._aenter"], {"_aenter": "_enter"})
    try:
        assert unasync.generate(generated, module) == generated
    finally:
        del unasync.TWINS[module]


# -- inlined bodies ---------------------------------------------------------------

SOURCE = (
    "class B:\n"
    "    async def _athrough(self, fn: Any) -> Any:\n"
    '        """Not inlined: its docstring."""\n'
    "        start = self.now()\n"
    "        self.span.start(fn)\n"
    "        if start:\n"
    "            result = await fn()\n"
    "\n"
    "        else:\n"
    "            result = None\n"
    "        return result\n"
)


def test_an_inlined_region_is_the_body_but_its_return_renamed_at_the_marker() -> None:
    lines = unasync.inlined_lines(SOURCE, "B._athrough", {"self": "b", "start": "at"}, "    ")
    assert lines == [
        "    at = b.now()\n",
        "    b.span.start(fn)\n",  # an attribute is not the name
        "    if at:\n",
        "        result = await fn()\n",
        "\n",
        "    else:\n",
        "        result = None\n",
    ]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("        return None\n", "must end with `return result`"),
        (
            "        if fn:\n            return fn\n        result = 1\n        return result\n",
            "returns before its end",
        ),
        (
            "        result = lambda: 1\n        return result\n",
            "defines a function",
        ),
        (
            '        result = """a\nb"""\n        return result\n',
            "less indented than its body",
        ),
        ("        return result\n", "nothing to inline"),
    ],
    ids=["other-return", "early-return", "nested-function", "string-over-lines", "only-return"],
)
def test_a_body_that_cannot_be_inlined_is_refused(body: str, says: str) -> None:
    source = "class B:\n    async def _athrough(self, fn: Any) -> Any:\n" + body
    with pytest.raises(SystemExit, match=says):
        unasync.inlined_lines(source, "B._athrough", {}, "")


def test_the_per_key_closures_hold_the_breakers_path_as_it_is_now() -> None:
    """The region in each per-key closure is the breaker's body of today,
    the sync one too (generated from the async closure, it is the
    breaker's generated sync path inlined)."""
    module, names = unasync.INLINES["resilient/circuit_breaker/keyed.py"]
    breaker = (ROOT / module).read_text()
    keyed = (ROOT / "resilient/circuit_breaker/keyed.py").read_text().splitlines(keepends=True)
    found = {}
    for i, line in enumerate(keyed):
        match = unasync.INLINE_BEGIN.match(line.rstrip("\n"))
        if match is None:
            continue
        end = next(j for j in range(i, len(keyed)) if keyed[j].strip() == unasync.INLINE_END)
        found[match[2]] = keyed[i + 1 : end]
    assert sorted(found) == ["CircuitBreaker._athrough", "CircuitBreaker._through"]
    # As code (ruff formats the region where it stands, so its lines may wrap
    # otherwise than the function's).
    for qualname, region in found.items():
        inlined = unasync.inlined_lines(breaker, qualname, names, "")
        assert _code(region) == _code(inlined), qualname


def _code(lines: list[str]) -> str:
    return ast.dump(ast.parse(textwrap.dedent("".join(lines))))


HOST = (
    "def wrap(fn):\n"
    "    def closure(*args, **kwargs):\n"
    "        start = 1\n"
    "        breaker = pick()\n"
    "        # --- inlined from B._athrough (scripts/unasync.py) ---\n"
    "        result = fn()\n"
    "        # --- end inlined ---\n"
    "        return start, result\n"
    "    return closure\n"
)


@pytest.mark.parametrize(
    ("inlined", "params", "says"),
    [
        (["start = now()\n", "result = fn()\n"], {"fn"}, r"rebind \['start'\]"),
        (["result = fn()\n"], {"fn", "brk"}, r"binds \['brk'\]"),
    ],
    ids=["rebinds-a-name-of-the-closure", "a-parameter-unbound"],
)
def test_inlined_lines_that_would_meet_the_closures_names_are_refused(
    inlined: list[str], params: set[str], says: str
) -> None:
    with pytest.raises(SystemExit, match=says):
        unasync._check_host(HOST, range(6, 7), inlined, params, "host.py:5")


def test_inlined_lines_that_keep_to_their_own_names_pass() -> None:
    unasync._check_host(HOST, range(6, 7), ["result = fn()\n"], {"fn", "breaker"}, "host.py:5")


def test_a_marker_without_its_end_is_refused() -> None:
    path = "resilient/circuit_breaker/keyed.py"
    text = "# --- inlined from CircuitBreaker._athrough (scripts/unasync.py) ---\nx = 1\n"
    with pytest.raises(SystemExit, match="no `# --- end inlined ---`"):
        unasync.inline(text, path)
