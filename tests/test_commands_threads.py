"""--threads auto (ThreadChooser), judged only by the thread counts it runs updates on: on a
clock whose updates cost what the test says for each count, it settles on the faster count
(fewer threads when equal or within the margin), reacts to load arriving and leaving and to
a pause, ignores one lucky probe for fewer threads, keeps losing probes rare, and always
gives the process its thread count back; AdaptiveThreads runs a fit's batches on it."""

import pytest
import torch

from rnnkit import LSTM
from rnnkit.batch import BatchingConfig
from rnnkit.commands.threads import AdaptiveThreads, ThreadChooser, ThreadConfig
from rnnkit.loader import SequenceLoader
from rnnkit.tasks.toys import Problem, SequenceModel, collate, make_dataset, make_objective
from rnnkit.train import Callback, FitConfig, fit


@pytest.fixture
def two_threads():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


class FakeWork:
    """A clock, and updates whose seconds per word depend on the thread count they run on;
    ``log`` holds (start time, thread count) of every update run."""

    def __init__(self, cost: dict[int, float]):
        self.now, self.cost, self.log = 0.0, dict(cost), []

    def clock(self) -> float:
        return self.now

    def seconds(self, threads: int, words: int) -> float:
        return self.cost[threads] * words

    def run(self, chooser: ThreadChooser, updates: int, words: int = 10) -> list[int]:
        counts = []
        for _ in range(updates):
            with chooser.update(words) as threads:
                assert threads == torch.get_num_threads()
                self.log.append((self.now, threads))
                self.now += self.seconds(threads, words)
            counts.append(threads)
        return counts

    def probes(self, other: int) -> list[float]:
        """Start times of each run of consecutive updates on ``other`` threads."""
        return [t for k, (t, n) in enumerate(self.log) if n == other and (k == 0 or self.log[k - 1][1] != other)]


class LuckyFirstProbe(FakeWork):
    """One thread is cheap during its first run of updates only (a quiet moment)."""

    def __init__(self, cost: dict[int, float], lucky: float):
        super().__init__(cost)
        self.lucky, self.runs_on_one = lucky, 0

    def seconds(self, threads: int, words: int) -> float:
        if threads == 1 and (len(self.log) < 2 or self.log[-2][1] != 1):
            self.runs_on_one += 1
        return (self.lucky if threads == 1 and self.runs_on_one == 1 else self.cost[threads]) * words


def _chooser(work: FakeWork, **config) -> ThreadChooser:
    return ThreadChooser(ThreadConfig(adaptive=True, **config), clock=work.clock)


def settled(counts: list[int], last: int = 200) -> int:
    """The count that most of the last updates ran on."""
    tail = counts[-last:]
    return max(set(tail), key=tail.count)


def test_one_thread_is_chosen_when_it_is_faster(two_threads):
    work = FakeWork({1: 1e-3, 2: 2e-3})
    counts = work.run(_chooser(work), 2000)
    assert counts[-500:].count(1) >= 490  # a probe on 2 now and then
    assert torch.get_num_threads() == 2


def test_all_threads_stay_when_faster_and_losing_probes_grow_rare(two_threads):
    work = FakeWork({1: 2e-3, 2: 1e-3})
    chooser = _chooser(work)
    counts = work.run(chooser, 30000)  # 300 s of training
    assert settled(counts) == 2
    assert counts.count(1) * 10 * 2e-3 / work.now < 0.01  # each probe loses 0.05 s; they are spaced out
    starts = work.probes(1)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(b > a - 0.1 for a, b in zip(gaps, gaps[1:]))  # the waits grow (to within a segment)...
    assert gaps[-1] >= chooser.config.longest_wait  # ...to the longest


def test_a_costly_losing_probe_waits_until_it_is_a_small_share(two_threads):
    work = FakeWork({1: 10e-3, 2: 1e-3})
    chooser = _chooser(work)
    counts = work.run(chooser, 20000)
    assert settled(counts) == 2
    first, second = work.probes(1)[:2]
    # the first probe, 2 updates on 1 thread, took 0.2 s for what 2 threads do in 0.02: the next
    # one waits until that loss is at most `overhead` of the training time between them
    assert second - first >= 0.18 / chooser.config.overhead


def test_equal_speeds_prefer_one_thread(two_threads):
    work = FakeWork({1: 1e-3, 2: 1e-3})
    assert settled(work.run(_chooser(work), 1000)) == 1


def test_more_threads_must_gain_the_margin(two_threads):
    work = FakeWork({1: 1.03e-3, 2: 1e-3})  # 3% faster on 2: within the 5% margin
    assert settled(work.run(_chooser(work), 1000)) == 1
    work = FakeWork({1: 1.2e-3, 2: 1e-3})
    assert settled(work.run(_chooser(work), 1000)) == 2


def test_load_arriving_is_seen_within_a_few_segments(two_threads):
    work = FakeWork({1: 2e-3, 2: 1e-3})
    chooser = _chooser(work)
    assert settled(work.run(chooser, 20000)) == 2  # long enough for the longest wait between comparisons
    work.cost[2] = 6e-3  # another process takes a core: 2 threads now stall
    start = len(work.log)
    counts = work.run(chooser, 400)
    assert settled(counts) == 1
    switched = next(k for k in range(len(counts)) if all(c == 1 for c in counts[k:k + 50]))
    # a slow segment, then two rounds of (segment on 2, probe on 1); each at least 0.1 s and 2 updates
    assert work.log[start + switched][0] - work.log[start][0] <= 2 * 0.12 + 2 * 0.1 + 0.12 + 1e-9


def test_one_lucky_probe_does_not_switch(two_threads):
    work = LuckyFirstProbe({1: 2e-3, 2: 1e-3}, lucky=0.5e-3)
    counts = work.run(_chooser(work), 3000)
    lucky, confirming = [k for k in range(1, len(counts)) if counts[k] == 1 and counts[k - 1] == 2][:2]  # probes
    lucky_end = counts.index(2, lucky)
    # it won once: one more segment on 2 threads and a second probe, which loses; no switch
    assert counts[lucky_end:confirming] == [2] * (confirming - lucky_end) and confirming - lucky_end >= 2
    confirming_end = counts.index(2, confirming)
    assert confirming_end - confirming < lucky_end - lucky  # the second probe ran at the real, slower cost
    assert counts[confirming_end:confirming_end + 50] == [2] * 50
    assert settled(counts) == 2


def test_after_a_pause_fewer_threads_are_compared_at_once(two_threads):
    histories = []
    for pause in (0.0, 5.0):
        work = FakeWork({1: 1e-3, 2: 2e-3})
        chooser = _chooser(work)
        assert settled(work.run(chooser, 20000)) == 1
        work.now += pause  # five seconds of something else (an evaluation, another program)
        histories.append(work.run(chooser, 40))  # 0.4 s
    assert histories[0] == [1] * 40 and 2 in histories[1]  # the pause alone started a comparison
    histories = []
    for pause in (0.0, 5.0):
        work = FakeWork({1: 2e-3, 2: 1e-3})
        chooser = _chooser(work)
        assert settled(work.run(chooser, 20000)) == 2
        work.now += pause  # on all threads a slow segment would start a comparison; a pause alone does not
        histories.append(work.run(chooser, 40))
    assert histories == [[2] * 40, [2] * 40]


def test_more_threads_are_taken_back_after_one_winning_probe(two_threads):
    work = FakeWork({1: 2e-3, 2: 6e-3})
    chooser = _chooser(work)
    assert settled(work.run(chooser, 5000)) == 1
    work.cost[2] = 1e-3
    counts = work.run(chooser, 4000)
    probe = counts.index(2)  # the first probe on 2 threads since the load left
    assert counts[probe:probe + 90] == [2] * 90  # it won, and 2 threads stay: no second probe needed


def test_load_leaving_is_found_by_a_later_probe(two_threads):
    work = FakeWork({1: 2e-3, 2: 6e-3})
    chooser = _chooser(work)
    assert settled(work.run(chooser, 5000)) == 1
    work.cost[2] = 1e-3  # the other process is gone
    counts = work.run(chooser, 4000)  # 80 s at 1 thread: longer than the longest wait
    assert counts[-100:].count(2) >= 90


def test_thread_count_is_given_back_when_the_update_raises(two_threads):
    work = FakeWork({1: 1e-3, 2: 2e-3})
    chooser = _chooser(work)
    assert settled(work.run(chooser, 500)) == 1
    with pytest.raises(RuntimeError, match="boom"):
        with chooser.update(10) as threads:
            assert threads == torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_fixed_count_and_one_thread_change_nothing(two_threads):
    work = FakeWork({1: 1e-3, 2: 2e-3})
    fixed = ThreadChooser(ThreadConfig(adaptive=False), clock=work.clock)
    assert set(work.run(fixed, 500)) == {2} and fixed.share() == {2: 1.0}
    torch.set_num_threads(1)
    one = _chooser(work)
    assert set(work.run(one, 50)) == {1}


def test_a_new_process_count_starts_afresh(two_threads):
    work = FakeWork({1: 1e-3, 2: 2e-3, 3: 0.5e-3})
    chooser = _chooser(work)
    assert settled(work.run(chooser, 500)) == 1
    torch.set_num_threads(3)
    counts = work.run(chooser, 500)
    assert settled(counts) == 3 and set(counts) == {1, 3}
    assert torch.get_num_threads() == 3


def test_share_reports_each_count(two_threads):
    work = FakeWork({1: 1e-3, 2: 2e-3})
    chooser = _chooser(work)
    counts = work.run(chooser, 1000)
    assert chooser.share() == {1: counts.count(1) / 1000, 2: counts.count(2) / 1000}


@pytest.mark.parametrize("bad, name", [({"segment": -1}, "segment"), ({"min_updates": 0}, "min_updates"),
                                       ({"margin": -0.1}, "margin"), ({"drop": 1.0}, "drop"),
                                       ({"overhead": 0}, "overhead"), ({"first_wait": 0}, "first_wait"),
                                       ({"confirm": 0}, "confirm"), ({"stale": 0}, "stale"),
                                       ({"first_wait": 5, "longest_wait": 2}, "longest_wait")])
def test_impossible_settings_are_named(bad, name):
    with pytest.raises(ValueError, match=name):
        ThreadConfig(**bad)


def test_adaptive_threads_run_a_fits_batches_on_both_counts_and_give_the_count_back(two_threads):
    """With a comparison after every update, the batches of a fit run on 1 and 2 threads
    (seen from inside the objective), and the process keeps its count; without the
    callback, every batch runs on the process's count."""

    class Seen(Callback):
        pass

    for chooser, expected in ((ThreadChooser(ThreadConfig(adaptive=True, segment=0.0, min_updates=1,
                                                          first_wait=1e-9)), {1, 2}), (None, {2})):
        torch.manual_seed(0)
        data = make_dataset(Problem.PARITY, 64, 2, 12, 0)
        model = SequenceModel(LSTM(1, 8), 2)
        loader = SequenceLoader(data, [len(x) for x, _ in data], collate, BatchingConfig(batch_size=8))
        seen, objective = [], make_objective(Problem.PARITY)

        def watched(m, batch, state, objective=objective, seen=seen):
            seen.append(torch.get_num_threads())
            return objective(m, batch, state)

        callbacks = [AdaptiveThreads(chooser)] if chooser else [Seen()]
        fit(model, watched, loader, torch.optim.Adam(model.parameters()), FitConfig(epochs=2), callbacks)
        assert set(seen) == expected and len(seen) == 16
        assert torch.get_num_threads() == 2
