"""``resilient.config.watch``: apply a document again whenever its file
changes, from a background thread that survives ``fork`` and stops cleanly.

The thread reads the file every ``interval`` seconds and applies it when
its bytes differ from the last ones it read. A file that cannot be read or
applied is logged, and the settings stay as the last good file left them
(all or nothing: ``resilient.config.load``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._runtime import fork as _fork

if TYPE_CHECKING:
    from .._runtime.mapping import Exceptions
    from .registry import Registry

__all__ = ["Watch"]

log = logging.getLogger("resilient")


class Watch:
    """A file watched: call it (or ``stop()``) to stop watching; ``check()``
    reads the file now (what the thread does every ``interval`` seconds)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        interval: float,
        load: Callable[[str | os.PathLike[str]], object],
    ) -> None:
        self.path = path
        self.interval = interval
        self._load = load
        self._last: bytes | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        _fork.renew_in_child(self, _fork.locks("_lock"))
        _fork.renew_in_child(self, Watch._forked, step=_fork.STATE)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped.is_set() else f"every {self.interval:g}s"
        return f"<Watch {os.fspath(self.path)!r} {state}>"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="resilient-config-watch", daemon=True
        )
        self._thread.start()

    def _forked(self) -> None:
        """In a forked child: the watching thread stayed in the parent."""
        self._stopped = _fork.fresh_lock(self._stopped)
        if not self._stopped.is_set():
            self.start()

    def _run(self) -> None:
        stopped = self._stopped
        while not stopped.wait(self.interval):
            self.check()

    def check(self) -> bool:
        """Read the file now and apply it if it changed; True when applied.
        A bad file is logged, and the last good settings stay."""
        with self._lock:
            if self._stopped.is_set():
                return False
            try:
                with open(self.path, "rb") as file:
                    raw = file.read()
            except OSError as error:
                log.error("resilient: cannot read %s (%s); the settings stay", self.path, error)
                return False
            if raw == self._last:
                return False
            try:
                self._load(self.path)
            except Exception as error:
                log.error(
                    "resilient: %s not applied, the last good settings stay: %s", self.path, error
                )
                self._last = raw  # logged once, not every interval
                return False
            self._last = raw
            log.info("resilient: applied %s", self.path)
            return True

    def stop(self) -> None:
        """Stop watching; waits for a check under way (unless called from it)."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def __call__(self) -> None:
        self.stop()


def watch(
    path: str | os.PathLike[str],
    interval: float,
    registry: Registry | None,
    exceptions: Exceptions | None,
    load: Callable[..., object],
) -> Watch:
    watcher = Watch(path, interval, lambda p: load(p, registry, exceptions=exceptions))
    watcher.check()
    watcher.start()
    return watcher
