"""A fuzz item's search: most graphs drawn without Hypothesis, every failure shrunk by it.

Hypothesis's bookkeeping costs 17-36 µs a draw: a graph of 10 drawn operations took
6-10 ms to draw through it, 1.6-1.9 ms through `draw_fast`, and a campaign checks
1.29x the graphs a second at 100 examples an item (throughput_search_100.md, side by
side in one run). So an item checks its budget of graphs in three runs:

1. Hypothesis's own, on a tenth of the budget: its example database replayed first (a
   failure found before, or by another machine), then its generation, whose boundary
   values and mutations a uniform draw lacks.
2. The rest drawn by `strategies.graphs.draw_fast` (the same strategy, each choice
   uniform, recorded), checked one after the other until one fails, and a few more
   (MORE) for smaller failing ones. They are drawn AHEAD at a time and handed to the
   checker first (`prefetch`: JAX's VJPs of all of them in one call, 0.24 of a call
   each, the same answers bit for bit), then checked one by one: the same graphs.
3. If one failed: Hypothesis again, given those graphs' choices as examples of its
   database. It replays those very graphs, shrinks the smallest and saves it as a
   report, exactly as a failure it found itself (saving.py). Should its replay pass
   (an engine whose answers depend on history), the failure found in 2 is raised
   as it was: a failing graph is never lost.
"""

import random
import zlib

HYPOTHESIS_SHARE = 10  # one graph in ten is drawn by Hypothesis itself (1. above)
# After a failure, up to MORE graphs more are drawn, and up to KEPT failing ones kept: the
# shrinker starts from the smallest. A uniform draw's first failure is a random one;
# Hypothesis's own search goes on a while after its first for the same reason.
MORE, KEPT = 50, 8
AHEAD = 16  # graphs drawn at a time, their JAX VJPs in one call (JaxOracle.BATCH)


def search(checker, strategy, name):
    """Check `max_examples` (the profile's) graphs of `strategy` on `checker` (a
    SavingChecker); raise the shrunk failure if one fails. `name`: the item's, the same
    in every checkout and on every machine (module::test[params]), which keys its
    examples in the database and seeds it where the run is seeded (`_seed`)."""
    from hypothesis import settings
    from mflow.oracles.verdict import EngineHang
    budget = settings.default.max_examples
    own = max(1, budget // HYPOTHESIS_SHARE)
    key = f"mflow-search:{name}".encode()
    seed = _seed(name)
    _hypothesis(checker, strategy, key, seed, max_examples=own)

    def failure(case):
        try:
            with checker.searching():
                checker.check(case)
        except Exception as e:  # noqa: BLE001 - every failure goes to Hypothesis
            return e
        return None
    found, failing = hunt(failure, strategy, random.Random(seed), budget - own,
                          # a hang costs the time limit twice a graph: no more of those
                          more=lambda first: 0 if isinstance(first, EngineHang) else MORE,
                          ahead=checker.prefetch)
    if found is not None:
        _shrink(checker, strategy, key, seed, failing, found)


def _seed(name):
    """The fast search's seed: fixed by the item under a derandomised profile or
    `pytest --hypothesis-seed=N` (with N), else fresh."""
    import hypothesis.core
    from hypothesis import settings
    forced = hypothesis.core.global_force_seed
    if forced is None and not settings.default.derandomize:
        return random.SystemRandom().getrandbits(64)
    return zlib.crc32(f"{'' if forced is None else forced}:{name}".encode())


def hunt(failure, strategy, rng, budget, more=lambda first: MORE, ahead=lambda cases: None):
    """(the first failure or None, the choices of the failing graphs): graphs drawn
    by `draw_fast` and given to `failure` (the exception a case raises, or None) until
    one fails, then `more(it)` graphs more, keeping up to KEPT failing ones. They are
    drawn AHEAD at a time and handed to `ahead` first (the references' batched work:
    Checker.prefetch), then checked one by one, as before: the same graphs."""
    from mflow.strategies.graphs import draw_fast
    first, failing, left, drawn = None, [], budget, []
    while left > 0 and len(failing) < KEPT:
        if not drawn:
            drawn = [draw_fast(strategy, rng) for _ in range(min(AHEAD, left))]
            ahead([case for case, _ in drawn])
            drawn.reverse()  # (popped from the end, in the order drawn)
        left -= 1
        case, choices = drawn.pop()
        e = failure(case)
        if e is not None:
            if first is None:
                first, left = e, min(left, more(e))
            failing.append(choices)
    return first, failing


def _shrink(checker, strategy, key, seed, failing, found):
    from hypothesis import Phase, settings
    from hypothesis.database import InMemoryExampleDatabase, MultiplexedDatabase, choices_to_bytes
    given = InMemoryExampleDatabase()
    # under the secondary key: an example of the primary key counts as shrunk already,
    # and Hypothesis would replay it without shrinking (tests/test_hypothesis_internals.py)
    for choices in failing:
        given.save(key + b".secondary", choices_to_bytes(choices))
    kept = settings.default.database  # where the shrunk failure is kept for later runs
    database = given if kept is None else MultiplexedDatabase(given, kept)
    _hypothesis(checker, strategy, key, seed, database=database,
                phases=[Phase.explicit, Phase.reuse, Phase.shrink])
    found.add_note("found by the fast search (reports/search.py); its replay under "
                   "Hypothesis passed, so it is reported unshrunk")
    raise found


def _hypothesis(checker, strategy, key, seed, **overrides):
    """One Hypothesis run of the item: `data.draw(strategy)`, checked."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(settings.default, **overrides)
    @given(data=st.data())
    def run(data):
        checker.check(data.draw(strategy, label="case"))
    run._hypothesis_internal_database_key = key
    if settings.default.derandomize:
        run._hypothesis_internal_use_seed = seed
    run()
