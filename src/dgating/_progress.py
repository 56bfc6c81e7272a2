"""Progress of long runs: a tqdm bar on a terminal, one flushed line per step otherwise.

Used by ``verify``, sweeps, the network experiments and ``reproduce``. When stderr is not a
terminal (a log file, a pipe, CI), a bar would show nothing useful (or nothing at all until the
end), so every step prints one line instead, for example::

    dgating verify (quick): 3/14 (21%) 5.1 s  reg_tall D=3

Examples
--------
>>> import io
>>> buf = io.StringIO()
>>> bar = Progress(2, "demo", stream=buf)
>>> bar.update(); bar.set_postfix_str("last"); bar.update(); bar.close()
>>> [line.split(")")[0] for line in buf.getvalue().splitlines()]
['demo: 1/2 (50%', 'demo: 2/2 (100%']
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

__all__ = ["Progress", "progress_iter"]

T = TypeVar("T")


class Progress:
    """A progress counter with tqdm's ``update``/``set_postfix_str``/``close`` interface.

    Parameters
    ----------
    total : int
        Number of steps.
    desc : str
        Prefix of every line (or of the bar).
    enabled : bool, default=True
        ``False`` prints nothing.
    initial : int, default=0
        Steps already done (a resumed sweep).
    stream : file, optional
        Where to write (default ``sys.stderr``). A terminal gets a tqdm bar, anything else one
        line per step.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        enabled: bool = True,
        initial: int = 0,
        stream: IO[str] | None = None,
    ) -> None:
        self.total, self.desc, self.n = int(total), desc, int(initial)
        self._stream = sys.stderr if stream is None else stream
        self._enabled = enabled
        self._postfix = ""
        self._start = time.perf_counter()
        self._bar: Any = None
        isatty = getattr(self._stream, "isatty", lambda: False)
        if enabled and isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total, initial=self.n, desc=desc, leave=False, file=self._stream
            )

    def set_postfix_str(self, text: str) -> None:
        """Text shown after the counter (the item being worked on)."""
        self._postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def update(self, n: int = 1) -> None:
        """``n`` more steps done: advance the bar, or print one line."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._enabled:
            pct = 100 * self.n // self.total if self.total else 100
            extra = f"  {self._postfix}" if self._postfix else ""
            print(
                f"{self.desc}: {self.n}/{self.total} ({pct}%) "
                f"{time.perf_counter() - self._start:.1f} s{extra}",
                file=self._stream,
                flush=True,
            )

    def close(self) -> None:
        """Remove the bar (lines stay)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_iter(
    items: Iterable[T], desc: str, *, enabled: bool = True, total: int | None = None
) -> Iterator[T]:
    """Iterate over ``items`` and report one step per item (see :class:`Progress`)."""
    items = list(items) if total is None else items
    with Progress(len(items) if total is None else total, desc, enabled=enabled) as bar:
        for item in items:
            yield item
            bar.update()
