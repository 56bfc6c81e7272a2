"""Worker processes that die with their parent.

:func:`worker_pool` is a :class:`concurrent.futures.ProcessPoolExecutor` (``spawn`` start method)
whose workers run a watchdog thread: when the parent process disappears (killed with SIGKILL, so
that it cannot shut its pool down), the parent pid seen by the worker changes and the worker exits
within :data:`POLL_SECONDS`. No orphaned worker keeps computing after its parent is gone.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

__all__ = ["POLL_SECONDS", "worker_pool"]

#: How often a worker checks that its parent is alive.
POLL_SECONDS = 0.2


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)  # the parent is gone: nobody will read our result


def _start_worker(parent: int, initializer: Callable | None, initargs: tuple) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def worker_pool(
    n_workers: int, initializer: Callable | None = None, initargs: tuple = ()
) -> ProcessPoolExecutor:
    """A ``spawn`` process pool of ``n_workers`` whose workers exit when this process dies.

    Parameters
    ----------
    n_workers : int
        Number of worker processes.
    initializer, initargs : optional
        Run in each worker after the watchdog starts (as for :class:`ProcessPoolExecutor`).
    """
    import multiprocessing

    return ProcessPoolExecutor(
        n_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
