"""Write each generated sync twin from its async source, as httpcore's
unasync does, but into a region of the same module: a concept keeps its
sync, async and stream paths in one hot-path file.

    python scripts/unasync.py          # rewrite the generated regions
    python scripts/unasync.py --check  # fail if one is out of date (the suite runs this)

A region stands right before its async source, where the hand-written
sync twin stood (the class keeps its order of methods: a class dict in
another order cost the per-key breaker about 1 % more instructions):

    # --- generated from _wrap_async by scripts/unasync.py; do not edit ---
    def _wrap_sync(...): ...
    # --- end generated ---

    async def _wrap_async(...): ...

The sync code is the async code with the replacements below, token by
token (whole names only), then ``ruff format``: nothing is added, so the
sync twin runs exactly the instructions a hand-written one would. A
statement whose first line ends with ``# unasync: async only`` is left
out of the sync twin (an async health check before admission, say).
It also inlines: a region marked ``# --- inlined from Class.method
(scripts/unasync.py) ---`` ... ``# --- end inlined ---`` holds that
method's body (see ``INLINES``), where a call would cost a coroutine per
call; it refuses a body that would rebind a name of the function around
the region.

Twins that differ on purpose (a bulkhead's threads and tasks, a
timeout's worker thread and loop timers, hedging's threads and tasks)
stay written out; ``docs/architecture.md`` lists both kinds.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ASYNC_ONLY = "# unasync: async only"

# Syntax: what an async twin has that its sync twin has not.
SYNTAX: list[tuple[str, str]] = [
    (r"\basync def ", "def "),
    (r"\basync for ", "for "),
    (r"\basync with ", "with "),
    (r"\bawait ", ""),
    (r", is_async=True\b", ""),
]

# Names, whole words only: the protocols', then the package's naming habit
# (``_arun`` / ``_run``, ``AsyncFn`` / ``SyncFn``...).
NAMES: dict[str, str] = {
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "aclose": "close",
    "athrow": "throw",
    "asend": "send",
    "anext": "next",
    "aiter": "iter",
    "AsyncIterator": "Iterator",
    "AsyncIterable": "Iterable",
    "StopAsyncIteration": "StopIteration",
    "AsyncFn": "SyncFn",
    "AOpen": "Open",
    "AStream": "Stream",
    "AStreamFn": "StreamFn",
    "atimed": "timed",
    "adetour": "detour",
    "sleep_async": "sleep",
    "_wrap_async": "_wrap_sync",
    "_arun": "_run",
    "arun": "run",
    "_aadmit": "_admit",
    "aadmit": "admit",
    "_aacquire": "_acquire",
    "aacquire": "acquire",
    "_athrough": "_through",
    "_athrough_held": "_through_held",
    "_aopen_stream": "_open_stream",
    "acounting": "counting",
    "aabandon": "abandon",
    "aopen_first": "open_first",
    "areopen": "reopen",
    "asealed": "sealed",
    "arelaying": "relaying",
    "_astream": "_stream",
}

# After the names: what the sync twin's types need. ``meter.timed`` of a
# generic ``run`` is ``Any`` to mypy where ``await meter.atimed`` is not.
AFTER: list[tuple[str, str]] = [
    (r"\bAwaitable\[([^\[\]]+)\]", r"\1"),
    (r"(\bmeter\.timed\(.*# type: ignore\[union-attr)\]", r"\1,no-any-return]"),
]

# Per module: the async functions (or classes) whose sync twin is generated
# (qualified names), and the names only that module maps (whole words; a
# key that is not a name is replaced as it stands).
TWINS: dict[str, tuple[list[str], dict[str, str]]] = {
    "resilient/rate_limit/stack.py": (
        ["Limits._aadmit", "Limits._wrap_async", "Limits._one_async", "Limits._arun", "_ALast"],
        {"_one_async": "_one_sync", "_ALast": "_Last", "await_turn": "wait_for_turn"},
    ),
    "resilient/rate_limit/limiter.py": (
        [
            "RateLimiter._aacquire",
            "RateLimiter._wrap_async",
            "RateLimiter._arun",
            "RateLimiter._aopen_stream",
        ],
        {"_areserve": "_reserve", "await_turn": "wait_for_turn"},
    ),
    "resilient/retry/retry.py": (
        ["Retry._wrap_async", "Retry._aretry", "Retry._aopen_stream", "_aattempt_with"],
        {"_aretry": "_retry", "aretry": "retry", "_aattempt_with": "_attempt_with"},
    ),
    "resilient/circuit_breaker/breaker.py": (
        [
            "CircuitBreaker._aadmit",
            "CircuitBreaker._athrough",
            "CircuitBreaker._athrough_held",
            "CircuitBreaker._arun",
            "CircuitBreaker._aopen_stream",
            "CircuitBreaker.__aenter__",
        ],
        {"acquire_async": "acquire"},
    ),
    "resilient/circuit_breaker/keyed.py": (
        ["KeyedBreakers._wrap_async", "KeyedBreakers._aopen_stream"],
        {"athrough": "through"},
    ),
    "resilient/_registry/membership.py": (["Member.acounting"], {}),
    "resilient/_execution/policy_base.py": (
        ["PolicyBase._astream", "ForwardingPolicy._arun"],
        {},
    ),
    "resilient/chaos.py": (["Chaos._arun"], {}),
    "resilient/http/_quota_gate.py": (["QuotaGate._wrap_async"], {}),
    "resilient/http/_transport.py": (["_RaiseForStatus._wrap_async"], {}),
    "resilient/_execution/streams.py": (
        ["aclose", "aabandon", "aopen_first", "areopen"],
        {},
    ),
    "resilient/_execution/request.py": (
        ["Request.atimed", "Request.adetour", "Request.stream"],
        {"def stream(": "def sync_stream("},
    ),
}

BEGIN = "# --- generated from {} by scripts/unasync.py; do not edit ---"
END = "# --- end generated ---"

# Per module: where the async function bodies it inlines come from (a
# module holding the function), and the names renamed in them (whole
# words). A marked region holds a function's body but its last statement,
# ``return result``, the only return it may have: the inlined lines leave
# their result in ``result``. Rename what would meet a name of the closure
# it is inlined into. Inlined where a call would cost a coroutine
# per call (measured; the module says by how much). A sync twin generated
# from the async code holds the region as unasync makes it.
INLINES: dict[str, tuple[str, dict[str, str]]] = {
    "resilient/circuit_breaker/keyed.py": (
        "resilient/circuit_breaker/breaker.py",
        {"self": "breaker", "start": "listened_at"},
    ),
}
INLINE_BEGIN = re.compile(r"^( *)# --- inlined from (\S+) \(scripts/unasync\.py\) ---$")
INLINE_END = "# --- end inlined ---"


def _compile(table: dict[str, str]) -> list[tuple[re.Pattern[str], str]]:
    return [
        (re.compile(rf"\b{re.escape(old)}\b" if old.isidentifier() else re.escape(old)), new)
        for old, new in table.items()
    ]


def unasync_lines(lines: list[str], names: dict[str, str]) -> list[str]:
    """The sync twin of ``lines`` (async source, dropped statements gone)."""
    syntax = [(re.compile(old), new) for old, new in SYNTAX]
    words = _compile({**NAMES, **names})
    after = [(re.compile(old), new) for old, new in AFTER]
    out = []
    for line in lines:
        for rules in (syntax, words, after):
            for pattern, new in rules:
                line = pattern.sub(new, line)
        out.append(line)
    return out


Twin = ast.AsyncFunctionDef | ast.FunctionDef | ast.ClassDef


def _find(tree: ast.Module, qualname: str) -> Twin:
    body: list[ast.stmt] = tree.body
    node: ast.stmt | None = None
    for part in qualname.split("."):
        node = next(
            (
                n
                for n in body
                if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and n.name == part
            ),
            None,
        )
        if node is None:
            raise SystemExit(f"scripts/unasync.py: no {qualname}")
        body = node.body
    assert isinstance(node, Twin)
    return node


def _dropped(node: ast.AST, lines: list[str]) -> set[int]:
    """The (0-based) lines of the statements marked async only."""
    drop: set[int] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.stmt) and lines[child.lineno - 1].rstrip().endswith(ASYNC_ONLY):
            assert child.end_lineno is not None
            drop.update(range(child.lineno - 1, child.end_lineno))
    return drop


def inlined_lines(source: str, qualname: str, names: dict[str, str], indent: str) -> list[str]:
    """The body of the function ``qualname`` of ``source`` (its docstring
    and its final ``return result`` left out), renamed, at ``indent``.

    A name is renamed where it stands alone, never as an attribute
    (``.start`` stays)."""
    node = _find(ast.parse(source), qualname)
    assert not isinstance(node, ast.ClassDef), qualname
    body = node.body
    if ast.get_docstring(node) is not None:
        body = body[1:]
    last = body[-1]
    if not (isinstance(last, ast.Return) and ast.unparse(last) == "return result"):
        raise SystemExit(f"scripts/unasync.py: {qualname} must end with `return result`")
    if len(body) < 2:
        raise SystemExit(f"scripts/unasync.py: {qualname} has nothing to inline")
    for statement in body[:-1]:
        for child in ast.walk(statement):
            if isinstance(child, ast.Return):
                raise SystemExit(f"scripts/unasync.py: {qualname} returns before its end")
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                raise SystemExit(f"scripts/unasync.py: {qualname} defines a function: not inlined")
    lines = source.splitlines(keepends=True)
    assert body[-2].end_lineno is not None
    words = [(re.compile(rf"(?<![.\w]){re.escape(old)}\b"), new) for old, new in names.items()]
    column = body[0].col_offset
    out = []
    for number, line in enumerate(lines[body[0].lineno - 1 : body[-2].end_lineno], body[0].lineno):
        if not line.strip():
            out.append("\n")
            continue
        if len(line) - len(line.lstrip()) < column:
            raise SystemExit(
                f"scripts/unasync.py: {qualname}, line {number}: less indented than its body"
                " (a string going on over lines, or a comment): not inlined"
            )
        line = indent + line[column:]
        for pattern, new in words:
            line = pattern.sub(new, line)
        out.append(line)
    return out


def _stored(nodes: list[ast.AST], skip: range = range(0)) -> set[str]:
    """The names ``nodes`` bind (arguments and assignments), but on the lines ``skip``."""
    found: set[str] = set()
    for node in nodes:
        for child in ast.walk(node):
            if isinstance(child, ast.arg):
                found.add(child.arg)
            elif (
                isinstance(child, ast.Name)
                and isinstance(child.ctx, ast.Store)
                and child.lineno not in skip
            ):
                found.add(child.id)
    return found


def _check_host(text: str, region: range, inlined: list[str], params: set[str], where: str) -> None:
    """The inlined lines (``region`` of ``text``) bind no name the functions
    around them use (but ``result``, which they hand over), and those
    functions bind each of the inlined function's parameters."""
    hosts = [
        node
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.lineno < region.start
        and (node.end_lineno or 0) >= region.stop
    ]
    host = _stored(hosts, region)  # type: ignore[arg-type]
    own = _stored([ast.parse(textwrap.dedent("".join(inlined)))])
    met = sorted((own & host) - {"result"})
    if met:
        raise SystemExit(f"scripts/unasync.py: {where}: the inlined lines rebind {met}")
    missing = sorted(params - host)
    if missing:
        raise SystemExit(f"scripts/unasync.py: {where}: nothing around the region binds {missing}")


def inline(text: str, path: str) -> str:
    """``text`` with every inlined region of the module at ``path`` written
    anew (but those of a generated twin: the twin is generated after)."""
    module, names = INLINES[path]
    source = (ROOT / module).read_text()
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    generated = False
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        stripped = line.strip()
        if stripped.startswith("# --- generated from "):
            generated = True
        elif stripped == END:
            generated = False
        match = INLINE_BEGIN.match(line.rstrip("\n"))
        if match is None or generated:
            continue
        end = next((j for j in range(i, len(lines)) if lines[j].strip() == INLINE_END), None)
        if end is None:
            raise SystemExit(f"scripts/unasync.py: {path}:{i}: no `{INLINE_END}` after the marker")
        inlined = inlined_lines(source, match[2], names, match[1])
        function = _find(ast.parse(source), match[2])
        assert not isinstance(function, ast.ClassDef)
        params = {names.get(a.arg, a.arg) for a in function.args.args}
        _check_host(text, range(i + 1, end + 1), inlined, params, f"{path}:{i}")
        out.extend(inlined)
        i = end
    return "".join(out)


def generate(text: str, path: str) -> str:
    """``text`` with every generated region of the module at ``path`` written anew."""
    if path in INLINES:
        text = inline(text, path)
    if path not in TWINS:
        return _format(text, path)
    qualnames, names = TWINS[path]
    for qualname in qualnames:
        lines = text.splitlines(keepends=True)
        node = _find(ast.parse(text), qualname)
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
        assert node.end_lineno is not None
        last = node.end_lineno  # one past the function, 0-based
        drop = _dropped(node, lines)
        source = [line for i, line in enumerate(lines[first:last], first) if i not in drop]
        indent = lines[node.lineno - 1][: node.col_offset]
        begin = indent + BEGIN.format(node.name) + "\n"
        region = [begin, *unasync_lines(source, names), indent + END + "\n"]
        # The region already there (before blank lines), if any, is replaced.
        end = indent + END + "\n"
        stop = first
        while stop > 0 and not lines[stop - 1].strip():
            stop -= 1
        start = stop
        if stop > 0 and lines[stop - 1] == end:
            start = max(i for i in range(stop) if lines[i] == begin)
        else:
            start = stop = first
        text = "".join([*lines[:start], *region, "\n", *lines[stop:]])
    return _format(text, path)


def _format(text: str, path: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", path, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"scripts/unasync.py: ruff format failed on {path}:\n{done.stderr}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say what is out of date")
    check = parser.parse_args(argv).check
    stale = []
    for path in {**TWINS, **INLINES}:
        file = ROOT / path
        text = file.read_text()
        new = generate(text, path)
        if new != text:
            stale.append(path)
            if not check:
                file.write_text(new)
    if check and stale:
        print(
            "generated sync code is out of date (or its module is not formatted) in: "
            + ", ".join(stale)
            + "\nedit the async source, never a generated region, then run:"
            + " python scripts/unasync.py",
            file=sys.stderr,
        )
        return 1
    for path in stale:
        print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
