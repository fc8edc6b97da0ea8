"""The Hypothesis internals the suite rests on (Hypothesis is pinned in
constraints.txt): if an upgrade moves one, this fails before the suite quietly
loses what it gave (shrinking to one step, the reproduction line, a seed per shard)."""

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.core import encode_failure


def test_lazy_strategies_expose_the_strategy_inside():
    # strategies/graphs.py draws from it directly: a third of each draw's cost, same choices
    inner = getattr(st.integers(0, 9), "wrapped_strategy", None)
    assert inner is not None and type(inner).__name__ == "IntegersStrategy"


def test_the_build_context_says_which_example_is_final_and_encodes_it():
    seen = []

    @settings(max_examples=5, database=None)
    @given(st.integers(0, 3))
    def run(x):
        context = current_build_context()
        seen.append((context.is_final, encode_failure(context.data.choices)))
    run()
    assert seen and all(isinstance(blob, bytes) and final is False for final, blob in seen)


def test_a_seed_set_on_the_wrapped_test_decides_the_draws():
    # reports/search.py seeds each item this way under a derandomised profile
    def draws(seed):
        out = []

        @settings(max_examples=10, database=None, derandomize=True)
        @given(st.integers(0, 10 ** 9))
        def run(x):
            out.append(x)
        run._hypothesis_internal_use_seed = seed
        run()
        return out
    assert draws(1) == draws(1) != draws(2)


def test_composite_draws_take_integer_span_labels():
    # strategies/graphs.py labels each matrix's seed, so the reducer and shrinker find it
    @st.composite
    def labelled(draw):
        return draw(st.integers(0, 3), label=0x5EED_5EED_5EED)

    @settings(max_examples=3, database=None)
    @given(labelled())
    def run(x):
        assert x in range(4)
    run()


def test_an_example_given_under_the_secondary_key_is_replayed_then_shrunk():
    # reports/search.py hands Hypothesis a failure it did not find this way: under the
    # primary key Hypothesis would take it as shrunk already and not shrink it
    from hypothesis import Phase
    from hypothesis.database import InMemoryExampleDatabase, choices_to_bytes
    seen = []
    for suffix, smallest in ((b".secondary", 10), (b"", 987)):
        database = InMemoryExampleDatabase()
        database.save(b"key" + suffix, choices_to_bytes([987]))

        @settings(database=database, phases=[Phase.reuse, Phase.shrink])
        @given(st.integers(0, 1000))
        def run(x):
            seen.append(x)
            assert x < 10
        run._hypothesis_internal_database_key = b"key"
        try:
            run()
        except AssertionError:
            pass
        assert seen[0] == 987 and seen[-1] == smallest
        seen.clear()


def test_pytests_hypothesis_seed_is_a_module_global_of_hypothesis_core():
    # reports/search.py seeds its fast search from it (pytest --hypothesis-seed=N)
    import hypothesis.core
    assert hasattr(hypothesis.core, "global_force_seed")
