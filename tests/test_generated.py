"""The sync twins generated from their async source (scripts/unasync.py) are
current, and the generator writes what it says: a region right before each
async source, the same code but for the async words."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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
