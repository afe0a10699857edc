"""``--threads auto``: each training update on one thread or on all the process has,
whichever trains more words per second at the moment. A process setting, so it lives
with the command line; it enters the training loop as a callback (:class:`AdaptiveThreads`).

Every parallel region of an update (a matrix product, an optimizer pass) waits for all its
threads. When another process takes a core, the thread on it is descheduled and each region
stalls until it runs again, so on a shared machine fewer threads can train faster; on a
quiet one more threads do. Neither count is right all the time, so it is measured.

:class:`ThreadChooser` times the updates it runs. Every so often it times a segment of
updates on the other count, right after a segment on the chosen one, and keeps the faster:
fewer threads unless more are faster by ``margin``. A switch to fewer threads needs
``confirm`` such wins in a row, so that one noisy segment does not cost the other threads
for a whole wait. A segment clearly slower than the chosen count's last measure (load
arrived) starts a comparison at once; on fewer threads, so does a pause of ``stale`` seconds
without updates (an evaluation, other work), after which the load may have gone. While the
choice stands the comparisons grow rarer, from ``first_wait`` up to ``longest_wait`` seconds
of training.

The choice depends on timing, so a run's last bits can differ from one run to the next
(results at 1 and 2 threads round differently): that is why it is opt-in. Without
``--threads auto`` the count is fixed and two runs with one seed are bitwise identical.

Example::

    chooser = ThreadChooser(ThreadConfig())
    for batch in batches:
        with chooser.update(words=batch.tokens):
            loss = model(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from rnnkit.batch import Batch
from rnnkit.train import Callback, FitState


@dataclass(frozen=True)
class ThreadConfig:
    adaptive: bool = False  # measure and choose between 1 thread and all; False: always all
    segment: float = 0.1  # seconds of updates one measurement takes, at least...
    min_updates: int = 2  # ...and at least this many updates
    margin: float = 0.05  # more threads are chosen only when at least this much faster
    confirm: int = 2  # a switch to fewer threads needs this many probes in a row that win
    drop: float = 0.3  # a segment this much slower than the chosen count's last measure compares at once
    first_wait: float = 1.0  # seconds of training before the first comparison and after a switch
    longest_wait: float = 30.0  # the wait doubles while the choice stands, up to this...
    overhead: float = 0.02  # ...and is at least what the losing probe cost (s) / overhead
    stale: float = 1.0  # after this many seconds without an update the measures are stale: compare anew

    def __post_init__(self) -> None:
        if self.segment < 0 or self.min_updates < 1 or self.confirm < 1 or self.stale <= 0:
            raise ValueError(f"ThreadConfig: segment={self.segment} must be >= 0, min_updates="
                             f"{self.min_updates} and confirm={self.confirm} >= 1, stale={self.stale} > 0")
        if self.margin < 0 or not 0 < self.drop < 1 or self.overhead <= 0:
            raise ValueError(f"ThreadConfig: margin={self.margin} must be >= 0, drop={self.drop} in (0, 1) "
                             f"and overhead={self.overhead} > 0")
        if not 0 < self.first_wait <= self.longest_wait:
            raise ValueError(f"ThreadConfig: need 0 < first_wait={self.first_wait} <= "
                             f"longest_wait={self.longest_wait}")


@dataclass
class _Segment:
    words: int = 0
    seconds: float = 0.0
    updates: int = 0

    @property
    def rate(self) -> float:
        return self.words / max(self.seconds, 1e-9)  # words/s


class ThreadChooser:
    """Runs each update on 1 thread or on all of ``torch.get_num_threads()``, whichever is faster now.

    ``update(words)`` is a context manager around one training update (forward, backward,
    optimizer step) of ``words`` tokens: it sets the thread count for the update, times it,
    and puts the process's count back after it, also when the update raises. The count the
    process has when an update starts is the most it may use; changing it starts the choice
    afresh. ``used`` counts the updates run on each count.
    """

    def __init__(self, config: ThreadConfig = ThreadConfig(), clock: Callable[[], float] = time.perf_counter):
        self.config, self.clock = config, clock
        self.used: Counter[int] = Counter()  # thread count -> updates run on it
        self._start(torch.get_num_threads())

    def _start(self, most: int) -> None:
        self.most = most  # the process's count: the most an update may use
        self.chosen = most  # the count updates run on between comparisons
        self.probing = False  # the current segment runs on the other count
        self.base = 0.0  # words/s of the chosen count in the segment before the probe
        self.reference: float | None = None  # words/s of the chosen count when last compared
        self.wait = self.config.first_wait  # seconds of training between comparisons
        self.since = 0.0  # seconds of training since the last comparison
        self.wins = 0  # probes in a row that the other count won
        self.segment = _Segment()
        self.last_end: float | None = None  # the clock when the last update ended

    @property
    def other(self) -> int:
        return 1 if self.chosen == self.most else self.most

    @contextlib.contextmanager
    def update(self, words: int) -> Iterator[int]:
        """Run the body, one update of ``words`` tokens, on the count chosen for it (yielded)."""
        most = torch.get_num_threads()
        if not self.config.adaptive or most == 1:
            self.used[most] += 1
            yield most
            return
        if most != self.most:
            self._start(most)
        start = self.clock()
        paused = self.last_end is not None and start - self.last_end > self.config.stale
        if paused and self.chosen < most:  # the load that made fewer threads pay may have gone: compare
            self.since = max(self.since, self.wait)
        threads = self.other if self.probing else self.chosen
        torch.set_num_threads(threads)
        try:
            yield threads
        finally:
            torch.set_num_threads(most)
        self.last_end = self.clock()
        self.used[threads] += 1
        self._measured(words, self.last_end - start)

    def share(self) -> dict[int, float]:
        """The fraction of updates run on each thread count."""
        total = sum(self.used.values())
        return {k: round(n / total, 3) for k, n in sorted(self.used.items())} if total else {}

    def _measured(self, words: int, seconds: float) -> None:
        c, seg = self.config, self.segment
        seg.words, seg.seconds, seg.updates = seg.words + words, seg.seconds + seconds, seg.updates + 1
        self.since += seconds
        if seg.seconds < c.segment or seg.updates < c.min_updates:
            return
        self.segment = _Segment()
        if self.probing:
            self._decide(seg)
        elif self.since >= self.wait or (self.reference is not None and seg.rate < self.reference * (1 - c.drop)):
            self.base, self.probing = seg.rate, True

    def _decide(self, probe: _Segment) -> None:
        """After a probe: keep the faster count, fewer threads unless more gain ``margin``."""
        c = self.config
        rate = probe.rate  # on the other count
        if self.other < self.chosen:
            better = rate * (1 + c.margin) >= self.base
        else:
            better = rate > self.base * (1 + c.margin)
        self.probing, self.since = False, 0.0
        if better:
            self.wins += 1
            if self.other < self.chosen and self.wins < c.confirm:  # one more segment on each count
                self.since = self.wait
                return
            self.chosen, self.reference, self.wait, self.wins = self.other, rate, c.first_wait, 0
        else:  # the next probe waits until this one's loss is at most `overhead` of the time between
            lost = probe.seconds - probe.words / max(self.base, 1e-9)
            self.reference, self.wait = self.base, min(max(2 * self.wait, lost / c.overhead), c.longest_wait)
            self.wins = 0


class AdaptiveThreads(Callback):
    """The training loop's hook for a :class:`ThreadChooser`: each batch's updates run on
    the count it chooses, and the process's count is put back after every batch."""

    def __init__(self, chooser: ThreadChooser | None = None):
        self.chooser = chooser or ThreadChooser(ThreadConfig(adaptive=True))
        self._update: contextlib.AbstractContextManager | None = None

    def on_batch_start(self, fit: FitState, batch: Batch) -> None:
        self._update = self.chooser.update(batch.tokens)
        self._update.__enter__()

    def on_batch_end(self, fit: FitState, batch: Batch) -> None:
        if self._update is not None:
            update, self._update = self._update, None
            update.__exit__(None, None, None)
