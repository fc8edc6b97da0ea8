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
    from mflow import shapes
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
