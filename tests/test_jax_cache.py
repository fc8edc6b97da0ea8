"""The JAX interpreters traced once for every process (jax_backend.exported): an
artefact in the cache folder is loaded instead of tracing; one that is damaged, a
FIFO, a link to a device or another version's is made again, never waited on or
trusted; a catalogue with operations of a user's own is traced in the process."""

import os
from unittest import mock

import numpy as np
import pytest
from mflow.oracles import catalogue, jax_backend
from mflow.oracles.jax_backend import exported, jax

from mflow import shapes


def _double():
    return jax.jit(lambda x: (2 * x, x.sum()))


ARGS = (np.arange(6.0).reshape(2, 3),)


def _artefacts(folder):
    return sorted((folder / "exported").iterdir())


def test_an_interpreter_is_traced_once_then_loaded(tmp_path):
    f = exported("double", _double(), ARGS, tmp_path)
    (path,) = _artefacts(tmp_path)
    assert np.array_equal(f(*ARGS)[0], 2 * ARGS[0])
    with mock.patch.object(jax.export, "export", side_effect=AssertionError("traced")):
        g = exported("double", _double(), ARGS, tmp_path)  # loaded: not traced again
    assert np.array_equal(g(*ARGS)[0], 2 * ARGS[0]) and _artefacts(tmp_path) == [path]


@pytest.mark.parametrize("damage", ["garbage", "empty", "fifo", "link /dev/zero", "huge"])
def test_a_damaged_artefact_is_made_again(tmp_path, damage):
    exported("double", _double(), ARGS, tmp_path)
    (path,) = _artefacts(tmp_path)
    path.unlink()
    if damage == "garbage":
        path.write_bytes(b"\x00not flatbuffers" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "fifo":
        os.mkfifo(path)
    elif damage == "link /dev/zero":
        path.symlink_to("/dev/zero")
    else:
        with open(path, "wb") as f:
            f.truncate(jax_backend.MAX_EXPORTED_BYTES + 1)
    f = exported("double", _double(), ARGS, tmp_path)  # (a FIFO would hang a plain read)
    assert np.array_equal(f(*ARGS)[0], 2 * ARGS[0])
    assert path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20


def test_a_catalogue_with_a_users_operation_is_traced_in_the_process(tmp_path):
    toy = catalogue.Record("toy_neg", 1, "elementwise", shapes.same,
                           torch=lambda torch, x: -x, jax=lambda jax, x: -x,
                           numpy=lambda np, x: -x)
    with catalogue.registered(toy):
        jitted = _double()
        assert exported("double", jitted, ARGS, tmp_path) is jitted
    assert not (tmp_path / "exported").exists()
    assert catalogue.built_in()  # the block undone: the suite's own again


def test_a_first_trace_and_compile_is_outside_the_time_limit(tmp_path):
    """An interpreter's first trace and compile (cold on a loaded machine it once took
    over the references' 120 s) does not count against the time limit around it; the
    limit runs again after it."""
    import time

    from mflow.oracles.checker import NoAnswer, _time_limit

    def slow(x):
        time.sleep(1.5)  # while tracing
        return 2 * x, x.sum()
    with _time_limit(0.5):
        f = exported("slow", jax.jit(slow), ARGS, tmp_path)
        assert np.array_equal(f(*ARGS)[0], 2 * ARGS[0])
        with pytest.raises(NoAnswer):
            time.sleep(2)


def test_the_oracles_of_a_process_share_each_compiled_interpreter():
    from mflow.oracles.jax_backend import JaxOracle
    a, b = JaxOracle(), JaxOracle()
    assert a._function(np.float64, 64) is b._function(np.float64, 64)
    assert a._jvp_function(np.float64, 64) is b._jvp_function(np.float64, 64)


def test_another_catalogues_interpreters_are_dropped_when_one_is_made(monkeypatch):
    live = jax_backend.collections.OrderedDict()
    monkeypatch.setattr(jax_backend, "_INTERPRETERS", live)
    jax_backend._interpreter("a", lambda: "A")
    with catalogue.registered(catalogue.Record("toy_neg", 1, "elementwise", shapes.same,
                                               numpy=lambda np, x: -x)):
        jax_backend._interpreter("a", lambda: "A'")
        assert list(live) == [("a", catalogue.version())]


def test_near_the_memory_map_limit_the_least_recently_used_are_dropped(monkeypatch):
    """Each compiled interpreter holds ~1,400-2,600 memory mappings; a process past
    vm.max_map_count crashed in XLA. Mappings are counted here as 20 per interpreter."""
    live = jax_backend.collections.OrderedDict()
    monkeypatch.setattr(jax_backend, "_INTERPRETERS", live)
    monkeypatch.setattr(jax_backend, "_mappings", lambda: (15 + 20 * len(live), 100))
    made = []

    def get(name):
        return jax_backend._interpreter(name, lambda: made.append(name) or name.upper())
    assert [get("a"), get("b"), get("a")] == ["A", "B", "A"] and made == ["a", "b"]
    get("c")  # 55 held, over 50 (the limit 100 less ~16,384, or its half):
    # "b", the least recently used, is dropped
    assert [k for k, _ in live] == ["a", "c"]
    get("b")  # made again
    assert made == ["a", "b", "c", "b"] and [k for k, _ in live] == ["c", "b"]


def test_over_the_limit_with_no_interpreter_left_eager_jaxs_caches_are_cleared(monkeypatch):
    live = jax_backend.collections.OrderedDict()
    monkeypatch.setattr(jax_backend, "_INTERPRETERS", live)
    monkeypatch.setattr(jax_backend, "_mappings", lambda: (60, 100))
    with mock.patch.object(jax, "clear_caches") as cleared:
        assert jax_backend._interpreter("a", lambda: "A") == "A"  # (nothing to drop)
        assert cleared.call_count == 1 and list(live) == [("a", catalogue.version())]
        jax_backend._drop_all()  # clearing JAX's caches drops the interpreters' executables:
        assert not live          # made again by `exported`, outside the time limits


def test_a_dropped_interpreter_gives_its_memory_mappings_back():
    from mflow.oracles.jax_backend import JaxOracle
    from mflow.oracles.program import Program, Step
    if jax_backend._mappings() is None:
        pytest.skip("memory mappings are counted on Linux alone")
    program = Program(((2, 2),), (Step("exp", (0,)),))
    x = np.ones((2, 2))
    JaxOracle(side=2, slots=4, steps=(2,), large=None).run(program, [x], x)
    key = ("vjp-float64-2-2-4", catalogue.version())
    held = jax_backend._mappings()[0]
    del jax_backend._INTERPRETERS[key]
    jax_backend.gc.collect()
    assert jax_backend._mappings()[0] < held - 100


def test_near_the_memory_map_limit_eager_jaxs_executables_are_dropped(monkeypatch):
    """Op by op (plain_vjp), eager JAX keeps an executable per operation and shape."""
    from mflow.oracles.program import Program, Step
    monkeypatch.setattr(jax_backend, "_EAGER_RUNS", jax_backend.itertools.count())
    monkeypatch.setattr(jax_backend, "_mappings", lambda: (60, 100))
    # (a store of its own: _drop_all empties it, and the worker's real one is kept)
    monkeypatch.setattr(jax_backend, "_INTERPRETERS", jax_backend.collections.OrderedDict())
    x = np.ones((2, 2))
    with mock.patch.object(jax, "clear_caches") as cleared:
        for _ in range(65):  # (checked on the 1st and the 65th)
            jax_backend.plain_vjp(Program(((2, 2),), (Step("exp", (0,)),)), [x], x)
    assert cleared.call_count == 2


def test_old_artefacts_of_an_interpreter_are_pruned_as_a_new_one_is_written(tmp_path):
    """Each source change names new artefacts: of each interpreter the KEPT most recently
    used stay (a load marks one used), a writer's torn temporary file goes once stale,
    and another interpreter's artefacts and unrelated files are left alone."""
    folder = tmp_path / "exported"
    folder.mkdir()
    old = [folder / f"double-{i:032x}.jax" for i in range(6)]
    for age, path in enumerate(old):
        path.write_bytes(b"an older version's")
        os.utime(path, (1e9 - age, 1e9 - age))  # old[0] the most recent of them
    other = folder / f"triple-{7:032x}.jax"
    torn = folder / f".double-{8:032x}.jax.123.abcdef01.tmp"
    fresh_torn = folder / f".double-{9:032x}.jax.124.abcdef02.tmp"
    for path in (other, torn, fresh_torn):
        path.write_bytes(b"x")
    os.utime(torn, (1e9, 1e9))
    os.utime(old[3], None)  # used just now (by another checkout, say)
    exported("double", _double(), ARGS, tmp_path)  # writes its own, then prunes
    left = {p.name for p in _artefacts(tmp_path)}
    doubles = {n for n in left if n.startswith("double-")}
    assert len(doubles) == jax_backend.KEPT
    assert {old[3].name, old[0].name, old[1].name} <= doubles  # the new one is the fourth
    assert other.name in left and fresh_torn.name in left and torn.name not in left
    (mine,) = {p for p in _artefacts(tmp_path) if p.name.startswith("double-")} - set(old)
    os.utime(mine, (1e9, 1e9))
    g = exported("double", _double(), ARGS, tmp_path)  # its own artefact survived: loaded,
    assert np.array_equal(g(*ARGS)[0], 2 * ARGS[0])
    assert mine.stat().st_mtime > 1e9 + 1  # and marked used
