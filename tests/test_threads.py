"""ThreadChooser: on a clock whose updates cost what the test says for each thread count, it
settles on the faster count (fewer threads when equal), reacts to load arriving and leaving
and to a pause, ignores one lucky probe for fewer threads, keeps probes rare when they lose, and always gives
the process its thread count back."""

import pytest
import torch

from rnnkit.threads import ThreadChooser, ThreadConfig


@pytest.fixture
def two_threads():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


class FakeWork:
    """A clock, and updates whose seconds per word depend on the thread count they run on."""

    def __init__(self, cost: dict[int, float]):
        self.now, self.cost = 0.0, dict(cost)

    def clock(self) -> float:
        return self.now

    def run(self, chooser: ThreadChooser, updates: int, words: int = 10) -> list[int]:
        counts = []
        for _ in range(updates):
            with chooser.update(words) as threads:
                assert threads == torch.get_num_threads()
                self.now += self.cost[threads] * words
            counts.append(threads)
        return counts


def _chooser(work: FakeWork, **config) -> ThreadChooser:
    return ThreadChooser(ThreadConfig(adaptive=True, **config), clock=work.clock)


def test_one_thread_is_chosen_when_it_is_faster(two_threads):
    work = FakeWork({1: 1e-3, 2: 2e-3})
    chooser = _chooser(work)
    counts = work.run(chooser, 2000)
    assert chooser.chosen == 1 and counts[-500:].count(1) >= 490  # a probe on 2 now and then
    assert torch.get_num_threads() == 2


def test_all_threads_stay_when_faster_and_losing_probes_grow_rare(two_threads):
    work = FakeWork({1: 2e-3, 2: 1e-3})
    chooser = _chooser(work)
    counts = work.run(chooser, 30000)  # 300 s of training
    assert chooser.chosen == 2
    probe_seconds = counts.count(1) * 10 * 2e-3
    assert probe_seconds / work.now < 0.01  # each probe loses 0.05 s; `overhead` spaces them 2.5 s and more
    assert chooser.wait == chooser.config.longest_wait


def test_a_costly_losing_probe_waits_until_it_is_a_small_share(two_threads):
    work = FakeWork({1: 10e-3, 2: 1e-3})
    chooser = _chooser(work)
    while chooser.since < chooser.config.first_wait or not chooser.probing:
        work.run(chooser, 1)
    counts = work.run(chooser, 2)  # the probe: 2 updates on 1 thread, 0.2 s for what 2 threads do in 0.02
    assert counts == [1, 1] and not chooser.probing and chooser.chosen == 2
    assert chooser.wait == pytest.approx(0.18 / chooser.config.overhead)


def test_equal_speeds_prefer_one_thread(two_threads):
    work = FakeWork({1: 1e-3, 2: 1e-3})
    chooser = _chooser(work)
    work.run(chooser, 1000)
    assert chooser.chosen == 1


def test_more_threads_must_gain_the_margin(two_threads):
    work = FakeWork({1: 1.03e-3, 2: 1e-3})  # 3% faster on 2: within the 5% margin
    chooser = _chooser(work)
    work.run(chooser, 1000)
    assert chooser.chosen == 1
    work = FakeWork({1: 1.2e-3, 2: 1e-3})
    chooser = _chooser(work)
    work.run(chooser, 1000)
    assert chooser.chosen == 2


def test_load_arriving_is_seen_within_a_few_segments(two_threads):
    work = FakeWork({1: 2e-3, 2: 1e-3})
    chooser = _chooser(work)
    work.run(chooser, 20000)  # long enough for the longest wait between comparisons
    assert chooser.chosen == 2 and chooser.wait == chooser.config.longest_wait
    work.cost[2] = 6e-3  # another process takes a core: 2 threads now stall
    start = work.now
    while chooser.chosen == 2:
        work.run(chooser, 1)
    # a slow segment, then two rounds of (segment on 2, probe on 1); each at least 0.1 s and 2 updates
    assert work.now - start <= 2 * 0.12 + 2 * 0.1 + 0.12 + 1e-9


def test_one_lucky_probe_does_not_switch(two_threads):
    work = FakeWork({1: 2e-3, 2: 1e-3})
    chooser = _chooser(work)
    while not chooser.probing:
        work.run(chooser, 1)
    work.cost[1] = 0.5e-3  # a quiet moment during the probe only
    while chooser.probing:
        work.run(chooser, 1)
    work.cost[1] = 2e-3
    assert chooser.wins == 1 and chooser.chosen == 2
    work.run(chooser, 100)
    assert chooser.wins == 0 and chooser.chosen == 2


def test_after_a_pause_fewer_threads_are_compared_at_once(two_threads):
    work = FakeWork({1: 1e-3, 2: 2e-3})
    chooser = _chooser(work)
    work.run(chooser, 20000)
    assert chooser.chosen == 1 and not chooser.probing and chooser.since < chooser.wait
    work.now += 5.0  # five seconds of something else (an evaluation, another program)
    assert 2 in work.run(chooser, 40)  # 0.4 s: a probe on 2 threads followed the first segment
    work = FakeWork({1: 2e-3, 2: 1e-3})
    chooser = _chooser(work)
    work.run(chooser, 20000)
    assert chooser.chosen == 2 and chooser.since < chooser.wait - 1
    work.now += 5.0  # on all threads a slow segment would start a comparison; a pause alone does not
    assert work.run(chooser, 40) == [2] * 40


def test_more_threads_are_taken_back_after_one_winning_probe(two_threads):
    work = FakeWork({1: 2e-3, 2: 6e-3})
    chooser = _chooser(work)
    work.run(chooser, 5000)
    assert chooser.chosen == 1
    work.cost[2] = 1e-3
    while not chooser.probing:
        work.run(chooser, 1)
    while chooser.probing:
        work.run(chooser, 1)
    assert chooser.chosen == 2


def test_load_leaving_is_found_by_a_later_probe(two_threads):
    work = FakeWork({1: 2e-3, 2: 6e-3})
    chooser = _chooser(work)
    work.run(chooser, 5000)
    assert chooser.chosen == 1
    work.cost[2] = 1e-3  # the other process is gone
    counts = work.run(chooser, 4000)  # 80 s at 1 thread: longer than the longest wait
    assert chooser.chosen == 2 and counts[-100:].count(2) >= 90


def test_thread_count_is_given_back_when_the_update_raises(two_threads):
    work = FakeWork({1: 1e-3, 2: 2e-3})
    chooser = _chooser(work)
    work.run(chooser, 500)
    assert chooser.chosen == 1
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
    work.run(chooser, 500)
    assert chooser.chosen == 1
    torch.set_num_threads(3)
    counts = work.run(chooser, 500)
    assert chooser.most == 3 and chooser.chosen == 3 and set(counts) == {1, 3}
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
