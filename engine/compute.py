"""The CPU budget: every heavy job waits for a compute slot, first come first served.

torch gives each call all of its intra-op threads. Two jobs at once (two browser
sessions, two shells) each spread over every core, and the cores then thrash:
three C&W runs took 9× one run's time instead of 3×. With one slot per machine
(the default) jobs run one after another at full speed, so k jobs finish in about
k× the solo time and never more, and a waiting job knows its place in the queue.

Slots are shared by the threads of a process (a FIFO queue) and by processes (one
lock file per slot under `PE_COMPUTE_DIR`, default the temp folder), so the app and
the CLI wait for each other too. `PE_COMPUTE_SLOTS=k` allows k jobs at once, each
given cores/k threads; `PE_COMPUTE_SLOTS=0` turns the queue off (every job at once with
all threads: what bench/concurrency.py compares against). A thread that holds a slot and asks again gets it at once
(nested operations never wait for themselves).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

# on_wait(ahead) while queued: `ahead` jobs of this process are before this one (running ones included), None when
# the wait is for another process's job; returning False leaves the queue.
OnWait = Callable[[int | None], bool | None]


class Cancelled(Exception):
    """The job left the queue before it started (its on_wait returned False)."""


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Queue:
    def __init__(self, slots: int = 1, folder: Path | None = None, poll_s: float = 0.2):
        if slots < 1:
            raise ValueError(f"compute slots must be at least 1, not {slots}")
        self.slots = slots
        self.poll_s = poll_s
        self.threads = max(1, _cores() // slots)
        self.folder = Path(
            folder or os.environ.get("PE_COMPUTE_DIR") or Path(tempfile.gettempdir()) / "perturbation-explorer-compute"
        )
        self._cond = threading.Condition()
        self._waiting: deque = deque()
        self._running = 0
        self._held = threading.local()

    def ahead(self, ticket=None) -> int:
        """Jobs before `ticket` (or before a new job): the running ones and those queued earlier."""
        with self._cond:
            queued = self._waiting.index(ticket) if ticket in self._waiting else len(self._waiting)
            return self._running + queued

    def _lock_file(self, on_wait: OnWait | None):
        """One of the machine's slot files, locked; waits (calling on_wait) while other processes hold them all."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            for i in range(self.slots):
                handle = open(self.folder / f"slot-{i}.lock", "w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return handle
                except BlockingIOError:
                    handle.close()
            if on_wait is not None and on_wait(None) is False:
                raise Cancelled("left the queue")
            time.sleep(self.poll_s)

    @contextmanager
    def slot(self, on_wait: OnWait | None = None) -> Iterator[None]:
        """Hold a compute slot for the body. Waiting calls `on_wait(ahead)` about every poll_s seconds; it may
        return False (Cancelled is raised) or raise itself (the job leaves the queue either way)."""
        depth = getattr(self._held, "depth", 0)
        if depth:  # this thread already computes: a nested operation
            self._held.depth = depth + 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        ticket = object()
        handle = None
        with self._cond:
            self._waiting.append(ticket)
        try:
            while True:
                with self._cond:
                    if self._waiting[0] is ticket and self._running < self.slots:
                        self._waiting.popleft()
                        self._running += 1
                        break
                    ahead = self._running + self._waiting.index(ticket)
                if on_wait is not None and on_wait(ahead) is False:
                    raise Cancelled("left the queue")
                with self._cond:
                    self._cond.wait(self.poll_s)
        except BaseException:
            with self._cond:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                self._cond.notify_all()
            raise
        try:
            handle = self._lock_file(on_wait)
            if self.slots > 1:  # k jobs at once share the cores; one job keeps whatever torch was given
                torch.set_num_threads(self.threads)
            self._held.depth = 1
            yield
        finally:
            self._held.depth = 0
            if handle is not None:
                handle.close()  # closing releases the lock
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def holding(self) -> bool:
        return bool(getattr(self._held, "depth", 0))


_QUEUE: Queue | None = None
_QUEUE_LOCK = threading.Lock()


def queue() -> Queue | None:
    """The process's queue, sized by PE_COMPUTE_SLOTS (default 1; 0: no queue)."""
    global _QUEUE
    with _QUEUE_LOCK:
        raw = os.environ.get("PE_COMPUTE_SLOTS", "1")
        if not raw.isdigit():
            raise ValueError(f"PE_COMPUTE_SLOTS={raw!r}: give a whole number of jobs at once (0: no queue)")
        if int(raw) == 0:
            return None
        if _QUEUE is None or _QUEUE.slots != int(raw):
            _QUEUE = Queue(int(raw))
        return _QUEUE


def slot(on_wait: OnWait | None = None):
    """`with compute.slot(): ...` — the process queue's slot (see Queue.slot); no wait with the queue off."""
    q = queue()
    return nullcontext() if q is None else q.slot(on_wait)
