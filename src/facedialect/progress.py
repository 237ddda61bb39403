"""Progress as plain log lines, for output that is not a terminal (batch jobs, Slurm, ``> log``).

:class:`LogProgress` stands in for the part of rich's ``Progress`` that the command line
uses (a context manager with ``add_task`` and ``update``), so every stage that draws a bar
on a terminal writes lines such as ``features: 412/1700 (24%), 2m05s elapsed, ETA 6m20s``
to a log instead: one when a task starts, then at most one every ``interval`` seconds,
and one when it ends.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO


def format_duration(seconds: float) -> str:
    """A short duration: ``9s``, ``2m05s``, ``1h02m``.

    Parameters
    ----------
    seconds : float
        The duration (negative values count as 0).

    Returns
    -------
    str
        Seconds under a minute, minutes and seconds under an hour, else hours and minutes.
    """
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _count(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float
    start: float
    base: tuple[float, float] | None = None   # (time, completed) at the first update
    last: float = 0.0                          # time of the last line printed
    started: bool = False
    ended: bool = False

    def fraction(self) -> str:
        if self.total is None:
            return f"{_count(self.completed)} done"
        pct = 100 if self.total <= 0 else int(100 * self.completed / self.total)
        return f"{_count(self.completed)}/{_count(self.total)} ({pct}%)"


class LogProgress:
    """Progress lines for logs; duck-types rich's ``Progress`` as the stages use it.

    Each task prints a start line at its first update, then one line every ``interval``
    seconds (done/total, elapsed time and the estimated time left) and an end line when
    ``completed`` reaches ``total``. Inside the ``with`` block a background thread prints
    the line of a started task that has not been updated for ``interval`` seconds too, so
    a slow step still shows in the log. A task left unfinished prints a last line when
    the context ends. Lines are plain text (no markup, no escape codes), flushed at once.

    Parameters
    ----------
    file : text stream, optional
        Where to write (default: ``sys.stderr`` at the time of writing).
    interval : float
        Least number of seconds between two progress lines of a task (0: every update).
    clock : callable
        Seconds from a monotonic clock (tests pass a fake one).
    heartbeat : bool
        Run the background thread (when ``interval > 0``); lines then come only from
        updates when False.

    Examples
    --------
    >>> import io
    >>> log = io.StringIO()
    >>> with LogProgress(log, interval=0) as bar:
    ...     task = bar.add_task("features", total=2)
    ...     bar.update(task, completed=0)
    ...     bar.update(task, completed=2)
    >>> log.getvalue().splitlines()[0]
    'features: started, 0/2 (0%)'
    """

    def __init__(self, file: TextIO | None = None, *, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, heartbeat: bool = True) -> None:
        self.file = file
        self.interval = float(interval)
        self.clock = clock
        self.heartbeat = heartbeat
        self._tasks: list[_Task] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LogProgress:
        if self.heartbeat and self.interval > 0 and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="LogProgress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        with self._lock:
            now = self.clock()
            for task in self._tasks:
                if task.started and not task.ended:
                    task.ended = True
                    took = format_duration(now - task.start)
                    if exc_type is not None:
                        self._say(f"{task.description}: stopped at {task.fraction()} after "
                                  f"{took}")
                    elif task.total is None:
                        self._say(f"{task.description}: done, {_count(task.completed)} in "
                                  f"{took}")
                    else:
                        self._say(f"{task.description}: ended at {task.fraction()} after "
                                  f"{took}")

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0,
                 completed: float = 0, **fields: Any) -> int:
        """Register a task; nothing is printed before its first update.

        Parameters
        ----------
        description : str
            What the task does (the start of each of its lines).
        start : bool
            Ignored (rich's signature).
        total : float or None
            Steps to do; None while unknown.
        completed : float
            Steps done already.
        **fields
            Ignored (rich's signature).

        Returns
        -------
        int
            The task id for :meth:`update`.
        """
        with self._lock:
            self._tasks.append(_Task(str(description), total, completed, self.clock()))
            return len(self._tasks) - 1

    def update(self, task_id: int, *, total: float | None = None,
               completed: float | None = None, advance: float | None = None,
               description: str | None = None, **fields: Any) -> None:
        """Update a task and print a line when one is due.

        Parameters
        ----------
        task_id : int
            From :meth:`add_task`.
        total, completed : float, optional
            New values (None: unchanged, as in rich).
        advance : float, optional
            Steps to add to ``completed``.
        description : str, optional
            A new description.
        **fields
            Ignored (rich's signature).
        """
        with self._lock:
            task = self._tasks[task_id]
            now = self.clock()
            if description is not None:
                task.description = str(description)
            if total is not None:
                task.total = total
            if completed is not None:
                task.completed = completed
            if advance is not None:
                task.completed += advance
            finished = task.total is not None and task.completed >= task.total
            if task.ended and not finished:   # the same task again from the start
                task.start, task.base, task.started, task.ended = now, None, False, False
            if task.ended:
                return
            first = not task.started
            if first:
                task.started, task.last, task.base = True, now, (now, task.completed)
                self._say(f"{task.description}: started, {task.fraction()}")
            if finished:
                task.ended = True
                self._say(f"{task.description}: done, {_count(task.completed)}/"
                          f"{_count(task.total or 0)} in {format_duration(now - task.start)}")
            elif not first and now - task.last >= self.interval:
                task.last = now
                self._say(self._line(task, now))

    def _beat(self) -> None:
        """Print the line of every started task that has had none for ``interval`` s."""
        while not self._stop.wait(min(self.interval / 4, 5.0)):
            with self._lock:
                now = self.clock()
                for task in self._tasks:
                    if task.started and not task.ended and now - task.last >= self.interval:
                        task.last = now
                        self._say(self._line(task, now))

    def _line(self, task: _Task, now: float) -> str:
        line = (f"{task.description}: {task.fraction()}, "
                f"{format_duration(now - task.start)} elapsed")
        t0, done0 = task.base or (task.start, 0.0)
        if task.total is not None and task.completed > done0 and now > t0:
            left = (now - t0) / (task.completed - done0) * (task.total - task.completed)
            line += f", ETA {format_duration(left)}"
        return line

    def _say(self, line: str) -> None:
        out = self.file if self.file is not None else sys.stderr
        out.write(line + "\n")
        out.flush()


#: The one progress callback of facedialect: ``progress(label, done, total)``, called while a
#: stage works (``label`` names the task: ``features``, ``train KDEF runs 0-9``).
ProgressFn = Callable[[str, int, int], None]


def labelled_ticker(bar: Any) -> ProgressFn:
    """Adapt a rich ``Progress`` or :class:`LogProgress` to a :data:`ProgressFn`, a task a label."""
    tasks: dict[str, Any] = {}

    def tick(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done, total=total)

    return tick



def progress_factory(console: Any = None) -> Callable[[], Any]:
    """A factory of progress displays: bars on a terminal or in Jupyter, log lines otherwise.

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw (default: standard error).

    Returns
    -------
    callable
        ``factory()`` -> a context manager with ``add_task`` and ``update`` (a rich
        ``Progress``, or a :class:`LogProgress` writing a line every 30 s at most).
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    out = console if console is not None else Console(stderr=True, soft_wrap=True)

    def make() -> Any:
        if not ((out.is_terminal and out.is_interactive) or out.is_jupyter):
            return LogProgress(out.file)
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=out, transient=True)

    return make
