"""SIGALRM deadlines for sync calls in the main thread (``Timeout(mode="signal")``).

One handler, installed on first use and kept: a call arms the real-time
timer with one ``setitimer`` and disarms it with one more. The handler
raises ``Alarm`` carrying the token of the innermost deadline armed,
so a call knows its own alarm from an enclosing one. An alarm that is
nobody's deadline (someone else's ``setitimer`` or ``alarm``) goes to the
handler ours replaced, or gets the default action, as if ours were not
there. Code that installs its own handler afterwards is respected: the next
call notices and installs ours again, in front of it.

Deadlines nest: a call whose enclosing deadline comes sooner leaves that
one armed and runs under it; one that comes later is re-armed, with what
is left of it, when the inner call ends.

A timer armed *during* a call (the call's own ``setitimer`` or ``alarm``)
replaces ours, as there is one real-time timer per process. We step aside:
an alarm that comes before our deadline is not ours, so it goes to the
handler ours replaced (yours), and then our deadline is armed again for
what is left of it, unless your timer (re-armed, or periodic) comes first.
A timer of yours still pending when the call ends is left armed.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from _signal import getsignal as _getsignal  # type: ignore[import-not-found]  # signal's: µs
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["Alarm", "call", "main_thread"]

R = TypeVar("R")


class Alarm(BaseException):
    """Raised by the handler; ``args[0]`` is the token of the deadline that
    expired. A BaseException, so the interrupted code's own ``except
    Exception`` cannot swallow it."""


# The innermost deadline of ours armed: when it is due (``_now()``), or
# None. The float object is also the deadline's token (compared by
# identity): a call knows its own alarm from an enclosing one without a
# counter, and an alarm that comes before it is someone else's.
_armed: list[float | None] = [None]
# How early an alarm may come and still be ours (the timer's granularity).
_EARLY = 1e-3
# Ours is armed with this interval, which no one else's timer has (a value
# that survives the float -> timeval -> float round trip exactly): when a
# call ends, the interval ``setitimer`` gives back tells ours from a timer
# the call armed, with no reading of the clock (two readings and their
# arithmetic cost a signal-mode call 15 % in instructions: ``python -m
# benchmarks``, "sync timeout: resilient (signal)"). Its first firing ends
# the call, which disarms it; a call that swallows the ``Alarm`` is
# interrupted again an interval later.
_OURS = 7919.5
# The deadline whose alarm the handler raised last (its token), and whether
# an alarm of ours is still on its way to the handler although its call has
# ended. Our timer can fire as a call ends, just before the call disarms it:
# the kernel has then delivered the signal, and the handler runs at
# Python's next check, after the call. The call sees it in what the timer
# it disarms had left, and marks it, and the handler drops that alarm
# instead of passing it on (to the default action, which ends the process).
_fired: list[float | None] = [None]
_stray = [False]

# The real monotonic time, whatever freezegun does to ``time.monotonic``
# (SIGALRM's timer runs in real time): ``clock_gettime(CLOCK_MONOTONIC)``,
# which neither freezegun nor time-machine replaces (time-machine only
# answers for the real-time clock), even when this module is first imported
# under a frozen clock.
_MONOTONIC = getattr(time, "CLOCK_MONOTONIC", 1)
_now: Callable[[], float] = functools.partial(time.clock_gettime, _MONOTONIC)


# The handler ours replaced: an alarm that is no deadline of ours goes there.
_previous: list[Any] = [signal.SIG_DFL]
_SIGALRM = int(signal.SIGALRM) if hasattr(signal, "SIGALRM") else 14
#: ``[ident]`` of the main thread, the only one SIGALRM reaches (refreshed
#: in a forked child, whose main thread is the one that forked).
main_thread: list[int | None] = [threading.main_thread().ident]


def _after_fork() -> None:
    main_thread[0] = threading.main_thread().ident
    _armed[0] = None
    _stray[0] = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _stray[0]:  # the alarm of a call that had ended when it came (see _stray)
        _stray[0] = False
        return
    due = _armed[0]
    if due is None:
        if signal.getitimer(signal.ITIMER_REAL)[1] == _OURS:
            # A timer of ours that no deadline owns (left armed by an alarm
            # that came between arming it and the call's bookkeeping): its
            # call is over. Nobody else's: disarm it, pass nothing on.
            signal.setitimer(signal.ITIMER_REAL, 0)
            return
        _pass_on(signum, frame)
        return
    if _now() >= due - _EARLY:
        _fired[0] = due
        raise Alarm(due)
    # Before our deadline: a timer armed during the call (which replaced
    # ours) fired. Its handler gets it; then our deadline is armed again.
    try:
        _pass_on(signum, frame)
    finally:
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        remaining = max(due - _now(), 1e-6)
        if left == 0.0 or left > remaining:
            signal.setitimer(signal.ITIMER_REAL, remaining, _OURS)


def _pass_on(signum: int, frame: FrameType | None) -> None:
    """The alarm to the handler ours replaced, as if ours were not there."""
    previous = _previous[0]
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        # The default action (the process ends), as if we were not there.
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGALRM)


def _install() -> None:
    _previous[0] = signal.signal(signal.SIGALRM, _on_alarm)


def call(
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    seconds: float,
    expired: Callable[[], BaseException],
) -> R:
    """``fn(*args, **kwargs)``, interrupted after ``seconds``: then the error
    ``expired()`` returns is raised, with the traceback of where the call was
    stopped. Main thread only: the caller checks."""
    if _getsignal(_SIGALRM) is not _on_alarm:
        _install()
    setitimer, real, now = signal.setitimer, signal.ITIMER_REAL, _now
    outer = _armed[0]
    outer_left = outer_interval = 0.0
    theirs: tuple[float, float] | None = None  # a timer armed during the call, pending
    armed = False
    start = now()
    due = start + seconds  # a new float: this deadline's token, by identity
    try:
        _armed[0] = due
        outer_left, outer_interval = setitimer(real, seconds, _OURS)
        armed = True
        if 0.0 < outer_left <= seconds:
            # An enclosing alarm comes first anyway: put it back, run under it.
            _armed[0] = outer
            setitimer(real, outer_left, outer_interval)
            armed = False
            outer_left = 0.0
        try:
            # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
            # builds a dict per call (docs/architecture.md, calls without keywords).
            return fn(*args, **kwargs) if kwargs else fn(*args)
        finally:
            if armed:
                left, interval = setitimer(real, 0)
                armed = False
                if interval != _OURS:
                    # A timer the call armed replaced ours: it is still pending
                    # (a timer that has fired is (0, 0), nobody's to keep).
                    if left:
                        theirs = (left, interval)
                elif not 0.0 < left <= seconds and _fired[0] is not due:
                    # Ours fired as the call ended (0 left: its signal is
                    # pending; more than ``seconds``: delivered, and the
                    # timer reloaded to its interval; a deadline longer
                    # than that interval, 2.2 hours, is seen pending only);
                    # its alarm is on its way to the handler.
                    _stray[0] = True
            _armed[0] = outer
    except Alarm as alarm:
        if alarm.args[0] is not due:
            raise  # an enclosing deadline's
        raise expired().with_traceback(alarm.__traceback__) from None
    finally:
        if armed or _armed[0] is due:
            # Interrupted between arming and the call: by our own alarm too,
            # when it came before ``armed`` was set (a tiny ``seconds``).
            setitimer(real, 0)
        _armed[0] = outer
        if outer_left > 0.0:
            # Re-arm the enclosing alarm for what is left of it, periodic
            # again if it was (unless the call's own timer comes sooner: one
            # timer per process).
            left = max(outer_left - (now() - start), 1e-6)
            if theirs is None or left <= theirs[0]:
                theirs = (left, outer_interval)
        if theirs is not None:
            setitimer(real, *theirs)
