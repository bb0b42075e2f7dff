"""One function run in a forked child process while the caller goes on: a second core.

A national analysis holds 500,000 sites in memory. A forked child shares them as they
are (copy-on-write), so a computation on them costs nothing to hand over; only its
result is pickled back. Where fork is not safe or not offered (Windows, macOS), the
function simply runs in this process when its result is asked for: the same result,
one core.

The child must not use the parent's database connections (it never needs to: it
computes and encodes, the parent writes), and it ends with ``os._exit``, so nothing of
the parent's (connections, files, atexit handlers) is closed or flushed twice.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Linux only: fork is the default there and safe for what the child does here.
CAN_FORK = sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()


class ForkedCallError(RuntimeError):
    """The forked function failed in a way that could not be sent back as its own error."""


def can_fork_now() -> bool:
    """Whether :func:`forked` starts a child now: fork is offered, this process is not a
    daemon (which may have no children) and runs no other thread. A thread holding a
    lock (logging, a connection pool) at the moment of the fork would leave that lock
    held forever in the child, so with threads running (a web server, a progress
    monitor) the function runs here instead."""
    return (
        CAN_FORK and not multiprocessing.current_process().daemon and threading.active_count() == 1
    )


@contextmanager
def forked(function: Callable[..., T], *args: Any) -> Iterator[Callable[[], T]]:
    """Start ``function(*args)`` in a forked child; yield a callable returning its result.

    The callable waits for the child and returns what ``function`` returned, or raises
    what it raised. Leaving the block without asking stops the child. Without fork, the
    callable runs ``function`` here (see :func:`can_fork_now`).
    """
    if not can_fork_now():
        if CAN_FORK:
            log.debug("%s runs here: other threads are running", function.__name__)
        yield lambda: function(*args)
        return
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_run_in_child, args=(send, function, args), daemon=True)
    child.start()
    send.close()  # the child's end; EOF here once the child has gone
    try:
        yield lambda: _result(receive, child)
    finally:
        if child.is_alive() and not receive.closed:
            child.terminate()  # the block failed before it asked for the result
        child.join()
        receive.close()


def _run_in_child(send: Any, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    code = 0
    try:
        try:
            outcome: tuple[bool, Any] = (True, function(*args))
        except BaseException as error:  # sent back, raised in the parent
            error.add_note("".join(traceback.format_exception(error)).rstrip())  # where
            outcome = (False, error)
            code = 1
        try:
            send.send(outcome)
        except Exception as problem:  # the result or error does not pickle: send its text
            what = outcome[1] if not outcome[0] else problem
            text = "".join(traceback.format_exception(what)).rstrip()
            send.send((False, ForkedCallError(f"not sent back from the forked child:\n{text}")))
            code = 1
        send.close()
    finally:
        os._exit(code)


def _result(receive: Any, child: Any) -> Any:
    try:
        ok, value = receive.recv()
    except EOFError:
        child.join()
        raise ForkedCallError(
            f"the child process ended with no result (exit code {child.exitcode})"
        ) from None
    finally:
        receive.close()
    if ok:
        return value
    raise value
