"""JAX as a reference: `jax.vjp` in float64 (x64 enabled).

Two ways to run a program, which a test holds equal:

- `plain_vjp`: the program interpreted op by op with `jax.numpy` under
  `jax.vjp`. Simple and obviously right, but eager JAX costs ~5 ms a graph (~0.3 s
  where each shape is new: eager JAX compiles each new shape's operations) and a
  `jit` of each new graph ~100 ms.
- `JaxOracle`: one compiled interpreter that takes the program as data. Every
  value lives in a fixed P x P slot (zero outside its shape), the program is a
  table of opcodes and operand slots, and a loop over the program's steps applies
  one `lax.switch` branch per step. A reverse loop then applies each step's own
  `jax.vjp` to the cotangent of its slot and adds the results into its operands'
  slots (the chain rule, done here rather than by differentiating the loop, which
  costs four times as much). It is compiled once per (mode, dtype, P, slots), so
  a new graph costs one call: P = 8 for most graphs, a second interpreter with
  P = 64 and few steps for large sides. Programs too large fall back to `plain_vjp`.
"""

import collections
import contextlib
import functools
import gc
import hashlib
import itertools
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402
from mflow.reports import files  # noqa: E402 - the one bounded reader (stdlib alone)

from .catalogue import CATALOGUE, Derived, built_in, version  # noqa: E402
from .engine import Result  # noqa: E402
from .program import interpret  # noqa: E402

jax.config.update("jax_enable_x64", True)
# The compiled interpreter takes seconds to compile; keep it on disk between runs.
CACHE = Path(os.environ.get("MFLOW_JAX_CACHE", os.path.expanduser("~/.cache/mflow-jax")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
# A size limit turns on the cache's file lock (filelock, torch's dependency): without it
# JAX's put is a plain write, and a worker of `pytest -n auto` read an entry the other
# was still writing and segfaulted (CI, a fresh cache). Such a cache keeps a time per
# entry, which one made without the lock lacks (then every put fails): its own folder.
try:
    import filelock  # noqa: F401
    jax.config.update("jax_compilation_cache_max_size", 8 << 30)
    jax.config.update("jax_compilation_cache_dir", str(CACHE / "compiled"))
except ImportError:
    jax.config.update("jax_compilation_cache_dir", str(CACHE))


def _ix(i):
    return np.arange(i.start, i.stop, i.step) if isinstance(i, slice) else np.asarray(i)


JAX_OPS = Derived(lambda: {name: rec.reference("jax", jax) for name, rec in CATALOGUE.items()})


_EAGER_RUNS = itertools.count()


def _eager(program):
    """The program as a function of its inputs, interpreted op by op with jax.numpy.
    Eager JAX keeps an executable per operation and shape (~13 memory mappings for a
    new shape of a two-operation program), so every 64th run drops them all if the
    process nears its memory-map limit (see _INTERPRETERS)."""
    if next(_EAGER_RUNS) % 64 == 0 and _over_budget():
        _drop_all()

    def f(*xs):
        return interpret(program, JAX_OPS, lambda x: x, jnp.asarray, xs)[-1]
    return f


def plain_vjp(program, inputs, cotangent):
    """The reference way: jax.vjp of the program interpreted with jax.numpy."""
    f = _eager(program)
    out, pullback = jax.vjp(f, *[jnp.asarray(x) for x in inputs])
    grads = pullback(jnp.asarray(cotangent, dtype=out.dtype))
    return Result(np.asarray(out), [np.asarray(g) for g in grads])


def plain_jvp(program, inputs, tangents):
    """jax.jvp of the program interpreted with jax.numpy: (output, J ṫ)."""
    f = _eager(program)
    out, t = jax.jvp(f, tuple(jnp.asarray(x) for x in inputs),
                     tuple(jnp.asarray(t) for t in tangents))
    return np.asarray(out), np.asarray(t)


def plain_hvp(program, inputs, cotangent, tangents):
    """jax.jvp of jax.vjp of the program interpreted with jax.numpy: H ṫ per input."""
    f = _eager(program)

    def vjp(*xs):
        out, pullback = jax.vjp(f, *xs)
        return pullback(jnp.asarray(cotangent, out.dtype))
    _, hs = jax.jvp(vjp, tuple(jnp.asarray(x) for x in inputs),
                    tuple(jnp.asarray(t) for t in tangents))
    return [np.asarray(h) for h in hs]


# --- traced once for every process ----------------------------------------------------
# With its compilation cached, a process still traced and lowered each interpreter it
# met, per (mode, dtype, bucket): 3-4 s for a VJP, 6-9 s for H t, every worker of every
# run. Traced once, it is kept as a jax.export artefact (StableHLO, data: flatbuffers,
# not pickle), named by a hash of jax's and jaxlib's versions, this package's source and
# the function's arguments; loading one and compiling it from the persistent cache
# takes ~1 s. Only for the built-in catalogue: a catalogue with a user's operations is
# traced in the process, as their code may have changed.
MAX_EXPORTED_BYTES = 64 << 20  # an interpreter's artefact is ~1 MB


@functools.cache
def _source_key():
    import jaxlib
    h = hashlib.sha256(f"{jax.__version__} {jaxlib.__version__}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


@contextlib.contextmanager
def _untimed():
    """Pause the running time limit (checker._time_limit's ITIMER_REAL), if any: an
    interpreter's first trace and compile is no reference's answer time. Cold, on a
    loaded machine, one took over the references' 120 s (a fresh clone's campaign beside
    a CI run); it is the same fixed interpreter whatever the program, once per process."""
    armed = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    left = signal.setitimer(signal.ITIMER_REAL, 0)[0] if armed else 0.0
    try:
        yield
    finally:
        if left:
            signal.setitimer(signal.ITIMER_REAL, left)


def exported(name, jitted, args, folder=None):
    """`jitted` for arguments of the types of `args`, from its artefact in the cache
    folder if one is there and loads (a damaged or foreign one is made again), else
    traced and saved there (written whole, renamed into place: concurrent writers each
    write a complete file); compiled by a first call on `args`, outside any time limit
    for the built-in catalogue (a user's own operations are traced with their code: timed)."""
    with _untimed() if built_in() else contextlib.nullcontext():
        fn = _exported(name, jitted, args, folder)
        jax.block_until_ready(fn(*args))
    return fn


def _exported(name, jitted, args, folder):
    from jax import export
    if not built_in():
        return jitted
    specs = [jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype) for a in args]
    key = hashlib.sha256(f"{_source_key()} {name} {specs}".encode()).hexdigest()[:32]
    folder = Path(folder or CACHE) / "exported"
    path = folder / f"{name}-{key}.jax"
    try:
        loaded = export.deserialize(bytearray(files.read_bytes(path, MAX_EXPORTED_BYTES)))
        _used(path)
        return jax.jit(loaded.call)  # jit: its calls take the compiled fast path
    except Exception:  # noqa: BLE001 - absent, damaged or foreign: traced again below
        pass
    made = export.export(jitted)(*specs)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files.atomic_write(path, bytes(made.serialize()))
        _prune(folder, name)
    except (OSError, ImportError):  # a read-only or full cache, or no flatbuffers: this
        pass                        # process keeps it in memory
    return jax.jit(made.call)


# Every change of this package's source or of jax's version names new artefacts (~0.3 MB
# each, ~20 a version): without pruning they piled up for good. Of each interpreter the
# KEPT most recently used stay (a load marks its artefact used), so that checkouts used
# side by side keep theirs; an older one, if ever asked for again, is traced again. A
# writer killed mid-write leaves its temporary file: gone after STALE seconds. (JAX's
# own compilation cache, beside it, is bounded by jax_compilation_cache_max_size.)
KEPT, STALE = 4, 3600.0


def _used(path):
    try:
        os.utime(path, follow_symlinks=False)
    except OSError:  # a read-only cache: it is pruned by age of writing alone
        pass


def _prune(folder, name):
    ours = re.compile(re.escape(name) + r"-[0-9a-f]{32}\.jax")
    torn = re.compile(r"\." + re.escape(name) + r"-[0-9a-f]{32}\.jax\.\d+\.[0-9a-f]{8}\.tmp")
    kept, now = [], time.time()
    with os.scandir(folder) as entries:
        for e in entries:
            try:
                when = e.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if ours.fullmatch(e.name):
                kept.append((when, e.path))
            elif torn.fullmatch(e.name) and now - when > STALE:
                Path(e.path).unlink(missing_ok=True)
    for _, old in sorted(kept, reverse=True)[KEPT:]:
        Path(old).unlink(missing_ok=True)  # (a process reading it keeps reading)


# --- compiled interpreters: one of each per process, within the memory-map limit ----

# A compiled interpreter holds ~3 memory mappings per XLA kernel: ~1,400 for the VJP
# interpreter, ~2,600 for the large sides' HVP. A Linux process may hold
# vm.max_map_count of them (65,530 by default); past it XLA cannot load the next
# executable, and the C++ error it raised crashed the process while unwinding (two CI
# workers, late in the run, where each test module's checker had compiled its own set:
# the core dump held 64,892 mappings). So the oracles of a process share one of each,
# and before one more is made the least recently used are dropped while the process
# holds more than the limit less 16,384 (an executable's mappings go with it; made
# again, it loads from the persistent cache).
_INTERPRETERS = collections.OrderedDict()


def _mappings():
    """(memory mappings this process holds, the most it may), or None off Linux."""
    try:
        with open("/proc/self/maps", "rb") as f:
            held = f.read().count(b"\n")
    except OSError:
        return None
    try:
        with open("/proc/sys/vm/max_map_count", "rb") as f:
            return held, int(f.read())
    except (OSError, ValueError):
        return held, 65530  # Linux's default


def _over_budget():
    """Does the process hold more mappings than leave room for a few more interpreters
    (~3,000 each at most) and whatever other libraries map meanwhile?"""
    held = _mappings()
    return held is not None and held[0] > max(held[1] // 2, held[1] - 16384)


def _drop_all():
    """Every compiled executable of the process, eager JAX's (plain_vjp's: one per
    operation and shape) and the interpreters': each interpreter is made again through
    `exported`, whose first compile is outside the time limits."""
    _INTERPRETERS.clear()
    jax.clear_caches()
    gc.collect()


def _interpreter(name, make):
    """The process's compiled interpreter `name` for the catalogue as it is now; made by
    `make()` if there is none, after making room for it."""
    key = (name, version())
    fn = _INTERPRETERS.get(key)
    if fn is not None:
        _INTERPRETERS.move_to_end(key)
        return fn
    for old in [k for k in _INTERPRETERS if k[1] != key[1]]:  # another catalogue's:
        del _INTERPRETERS[old]                                 # never asked for again
    while _over_budget():
        if not _INTERPRETERS:  # what is left is eager JAX's
            _drop_all()
            break
        _INTERPRETERS.popitem(last=False)
        gc.collect()  # (a dropped executable may sit in a reference cycle until then)
    fn = _INTERPRETERS[key] = make()
    return fn


# --- the compiled interpreter ------------------------------------------------------

# Opcodes, from the catalogue: one per operation, and one per value of an attribute that
# changes the computation's structure (`opcode_by`: the axis of sum, softmax, concat).
def compiled(rec):
    """Has the compiled interpreter a branch for this operation? One with a `slot`, or
    an element-wise one whose only attribute is the scalar it carries. A program with
    any other operation runs op by op (`plain_vjp`)."""
    return rec.slot is not None or (rec.kind in ("elementwise", "binary")
                                    and set(rec.attrs) <= {SCALAR})


@functools.cache
def _codes(version):
    codes = ["nop"]
    for name, rec in CATALOGUE.items():
        if not compiled(rec):
            continue
        values = itertools.product(*(rec.drawn[k] for k in rec.opcode_by))
        codes += [(name, dict(zip(rec.opcode_by, v))) for v in values]
    return codes


def codes():
    """[nop, (operation, {attribute: value}) per opcode] of the catalogue as it is now."""
    return _codes(version())


def opcode(name, attrs):
    """The opcode of a step of `name` with `attrs`."""
    rec = CATALOGUE[name]
    key = (name, {k: attrs[k] for k in rec.opcode_by})
    return codes().index(key)


# A step is one row of ints (these fields, then P row and P column indices for
# getitem) and one float (a scalar attribute: pow's exponent): few operands keep
# lax.switch cheap.
_FIELDS = ("op", "a0", "a1", "dst", "R", "C", "r0", "c0", "r1", "c1", "stride", "top", "left")
SCALAR = "p"  # the one attribute carried as a float (pow's exponent)


def _unpack(ints, p, P):
    s = {name: ints[i] for i, name in enumerate(_FIELDS)}
    n = len(_FIELDS)
    s["ri"], s["ci"], s["p"] = ints[n:n + P], ints[n + P:n + 2 * P], p
    s["map"] = ints[n + 2 * P:n + 2 * P + P * P]  # a movement's source per place (gather)
    return s


def movement_map(name, attrs, shape, P):
    """A movement operation (record slot "gather") as data: for each place of the
    P x P result slot, 1 + the flat index in the operand's slot that it copies, 0 for a
    zero. Read off the operation's own numpy reference run on the operand's indices,
    so the map is the reference's, not a second writing of it."""
    m, n = shape
    index = np.arange(1, m * n + 1, dtype=np.float64).reshape(m, n)
    out = np.asarray(CATALOGUE[name].reference("numpy", np)(index, **attrs)).astype(int)
    k = np.where(out > 0, out - 1, 0)
    flat = np.zeros((P, P), int)
    flat[:out.shape[0], :out.shape[1]] = np.where(out > 0, (k // n) * P + k % n + 1, 0)
    return flat.reshape(-1)


def _branches(P, dtype):
    """One branch per opcode (`codes()`): each operation's slot kind (its record's
    `slot`, or its kind: elementwise, binary) made into a function of padded slots."""
    rows = jnp.arange(P)[:, None]
    cols = jnp.arange(P)[None, :]
    eye = jnp.eye(P, dtype=dtype)
    e00 = jnp.zeros((P, P), dtype).at[0, 0].set(1)
    big_negative = jnp.asarray(-1e30, dtype)  # exp of it is exactly 0; finite in float32 too

    def mask(r, c):
        return (rows < r) & (cols < c)

    def spread(x, r, c):
        """Broadcast a (1, n) row or (m, 1) column over the P x P slot."""
        x = jnp.where(r == 1, jnp.broadcast_to(x[0:1, :], (P, P)), x)
        return jnp.where(c == 1, jnp.broadcast_to(x[:, 0:1], (P, P)), x)

    def elementwise(f):
        def branch(x, y, s):
            m = mask(s["R"], s["C"])
            return jnp.where(m, f(jnp.where(m, x, 1), s), 0)  # safe 1 outside: no NaN in grads
        return branch

    def binary(f):
        def branch(x, y, s):
            m = mask(s["R"], s["C"])
            a = spread(x, s["r0"], s["c0"])
            b = jnp.where(m, spread(y, s["r1"], s["c1"]), 1)
            return jnp.where(m, f(a, b), 0)
        return branch

    def place_row(v):  # a (P,) vector as row 0 of a slot
        return jnp.zeros((P, P), dtype).at[0, :].set(v)

    def place_col(v):
        return jnp.zeros((P, P), dtype).at[:, 0].set(v)

    def softmax(axis, log):
        def branch(x, y, s):
            m = mask(s["R"], s["C"])
            z = jnp.where(m, x, big_negative)
            z = z - jnp.max(z, axis=axis, keepdims=True)
            if log:
                out = z - jnp.log(jnp.sum(jnp.exp(z), axis=axis, keepdims=True))
            else:
                e = jnp.exp(z)
                out = e / jnp.sum(e, axis=axis, keepdims=True)
            return jnp.where(m, out, 0)
        return branch

    def concat(axis):
        def branch(x, y, s):
            if axis == 0:
                shifted, first = jnp.roll(y, s["r0"], axis=0), rows < s["r0"]
            else:
                shifted, first = jnp.roll(y, s["c0"], axis=1), cols < s["c0"]
            return jnp.where(mask(s["R"], s["C"]), jnp.where(first, x, shifted), 0)
        return branch

    def square_padded(x, s):  # the matrix in the top-left block, identity elsewhere
        return jnp.where(mask(s["r0"], s["c0"]), x, eye)

    def getitem(x, y, s):
        return jnp.where(mask(s["R"], s["C"]), x[s["ri"]][:, s["ci"]], 0)

    def conv2d(x, y, s):
        image = lax.dynamic_update_slice(jnp.zeros((2 * P, 2 * P), dtype), x,
                                         (s["top"], s["left"]))
        corr = lax.conv_general_dilated(image[None, None], y[None, None], (1, 1), "VALID")[0, 0]
        at = jnp.minimum(jnp.arange(P) * s["stride"], P)
        return jnp.where(mask(s["R"], s["C"]), corr[at][:, at], 0)

    def gather(x, y, s):  # a movement: each place copies one of the operand's, or is 0
        src = s["map"]
        return jnp.where(src > 0, x.reshape(-1)[jnp.maximum(src - 1, 0)], 0).reshape(P, P)

    def inside(s):
        return mask(s["r0"], s["c0"])

    def placed(r, axis):  # a reduction's (keepdims) result where the step's shape says
        if axis is None:
            return r[0, 0] * e00
        return place_row(r[0]) if axis == 0 else place_col(r[:, 0])

    def reduction(kind, axis):
        """Masked: the operand's places alone count, whatever fills the slot around them."""
        def branch(x, y, s):
            m = inside(s)
            if kind == "logsumexp":
                z = jnp.where(m, x, big_negative)
                top = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
                r = top + jnp.log(jnp.sum(jnp.exp(z - top), axis=axis, keepdims=True))
            elif kind == "prod":
                r = jnp.prod(jnp.where(m, x, 1), axis=axis, keepdims=True)
            elif kind == "var":
                n = count(s, axis)
                mean = jnp.sum(jnp.where(m, x, 0), axis=axis, keepdims=True) / n
                r = jnp.sum(jnp.where(m, (x - mean) ** 2, 0), axis=axis, keepdims=True) / n
            else:  # norm: √ of a sum that is 1 where no operand place is (no NaN gradient)
                total = jnp.sum(jnp.where(m, x * x, 0), axis=axis, keepdims=True)
                r = jnp.sqrt(jnp.where(total > 0, total, 1))
            return jnp.where(mask(s["R"], s["C"]), placed(r, axis), 0)
        return branch

    def scan(kind, axis):
        def branch(x, y, s):
            m = inside(s)
            if kind == "cumsum":
                r = jnp.cumsum(jnp.where(m, x, 0), axis=axis)
            else:
                r = jnp.cumprod(jnp.where(m, x, 1), axis=axis)
            return jnp.where(m, r, 0)
        return branch

    def chooser(kind, axis):  # max and min: the operand's places alone, the rest filled
        def branch(x, y, s):
            fill = big_negative if kind == "max" else -big_negative
            z = jnp.where(inside(s), x, fill)
            r = (jnp.max if kind == "max" else jnp.min)(z, axis=axis, keepdims=True)
            return jnp.where(mask(s["R"], s["C"]), placed(r, axis), 0)
        return branch

    def maxpool2d(size, stride):
        def branch(x, y, s):
            z = jnp.where(inside(s), x, big_negative)
            r = lax.reduce_window(z, -jnp.inf, lax.max, (size, size), (stride, stride), "VALID")
            out = jnp.zeros((P, P), dtype).at[:r.shape[0], :r.shape[1]].set(r)
            return jnp.where(mask(s["R"], s["C"]), out, 0)
        return branch

    def where(x, y, s):  # the mask comes in the step's map
        m = mask(s["R"], s["C"])
        a, b = spread(x, s["r0"], s["c0"]), spread(y, s["r1"], s["c1"])
        return jnp.where(m, jnp.where(s["map"].reshape(P, P) > 0, a, b), 0)

    def solve(x, y, s):  # A padded with the identity: the rows and columns past B's are 0
        return jnp.where(mask(s["R"], s["C"]), jnp.linalg.solve(square_padded(x, s), y), 0)

    def count(s, axis):
        return {None: s["r0"] * s["c0"], 0: s["r0"], 1: s["c0"]}[axis].astype(dtype)

    def reduce(axis):  # sum: zeros outside the shape add nothing
        if axis is None:
            return lambda x, y, s: jnp.sum(x) * e00
        return lambda x, y, s: (place_row if axis == 0 else place_col)(jnp.sum(x, axis=axis))

    def mean(axis):
        if axis is None:
            return lambda x, y, s: jnp.sum(x) / count(s, None) * e00
        place = place_row if axis == 0 else place_col
        return lambda x, y, s: place(jnp.sum(x, axis=axis) / count(s, axis))

    def with_scalar(f, rec):  # the scalar attribute (pow's p) comes from the step's float
        return (lambda x, s: f(x, **{SCALAR: s["p"]})) if SCALAR in rec.attrs \
            else (lambda x, s: f(x))

    def slot(rec, attrs):
        kind = rec.slot or {"elementwise": "elementwise", "binary": "binary"}[rec.kind]
        f = JAX_OPS[rec.name]
        axis = attrs.get("axis")
        return {
            "elementwise": lambda: elementwise(with_scalar(f, rec)),
            "binary": lambda: binary(f),
            "matrix": lambda: (lambda x, y, s: f(x, y)) if rec.arity == 2 else
                      (lambda x, y, s: f(x)),
            "sum": lambda: reduce(axis), "mean": lambda: mean(axis),
            "concat": lambda: concat(axis), "getitem": lambda: getitem,
            "softmax": lambda: softmax(axis, False), "log_softmax": lambda: softmax(axis, True),
            "trace": lambda: lambda x, y, s: jnp.trace(x) * e00,
            "inv": lambda: lambda x, y, s: jnp.where(mask(s["R"], s["C"]),
                                                     jnp.linalg.inv(square_padded(x, s)), 0),
            "det": lambda: lambda x, y, s: jnp.linalg.det(square_padded(x, s)) * e00,
            "conv2d": lambda: conv2d, "gather": lambda: gather,
            "logsumexp": lambda: reduction("logsumexp", axis),
            "prod": lambda: reduction("prod", axis), "var": lambda: reduction("var", axis),
            "norm": lambda: reduction("norm", axis), "cumsum": lambda: scan("cumsum", axis),
            "cumprod": lambda: scan("cumprod", axis), "solve": lambda: solve,
            "logdet": lambda: lambda x, y, s: jnp.linalg.slogdet(square_padded(x, s))[1] * e00,
            "clip": lambda: elementwise(lambda x, s: jnp.clip(x, attrs["lo"], attrs["hi"])),
            "max": lambda: chooser("max", axis), "min": lambda: chooser("min", axis),
            "maxpool2d": lambda: maxpool2d(attrs["size"], attrs["stride"]),
            "where": lambda: where,
        }[kind]()

    def packed(branch):
        return lambda x, y, ints, p: branch(x, y, _unpack(ints, p, P))
    return [packed(lambda x, y, s: x)] + [packed(slot(CATALOGUE[name], attrs))
                                          for name, attrs in codes()[1:]]


@dataclass(frozen=True)
class Encoded:
    """A program as the compiled interpreter reads it."""
    ints: np.ndarray      # (bucket, fields): one row of ints per step, padded with no-ops
    ps: np.ndarray        # (bucket,): each step's scalar attribute (pow's exponent)
    consts: list          # (slot, value) of each constant
    out_slot: int
    n: int                # the steps the loops run (the rest is padding)

    def args(self, dtype):
        """(ints, ps, out_slot, n) as the interpreters take them."""
        return self.ints, self.ps.astype(dtype), np.int32(self.out_slot), np.int32(self.n)


class JaxOracle:
    """jax.vjp of a whole program in one compiled call (see the module docstring)."""

    name = "jax"

    # A program is padded to the least bucket of steps that holds it, and the loops run
    # its own steps alone, so one bucket serves all: one interpreter per (mode, dtype) to
    # load in each process, not one per size. Deep chains (24 drawn operations) encode
    # to up to ~48 steps: below 64, one in seven fell back to plain_vjp at ~0.5 s each.
    # A program with a side above P goes to a second interpreter of sides up to 64 and
    # few steps (the fuzz tests' operations at large sides): op by op, plain_vjp compiled
    # each new shape's operations, ~0.3 s a graph and half a campaign's check time.
    def __init__(self, side=8, slots=64, steps=(64,), large=(64, 16, (16,))):
        self.P, self.S, self.buckets = side, slots, steps
        self._raw, self._last, self._ready = {}, None, []
        self._large_geometry, self._large = large, None

    def _other(self, program):
        """The interpreter of large sides where `program` needs it, else None."""
        if self._large_geometry is None or max(max(s) for s in program.shapes) <= self.P:
            return None
        if self._large is None:
            self._large = JaxOracle(*self._large_geometry, large=None)
        return self._large

    def _example(self, dtype, steps):
        """Arguments of the interpreters' types for a bucket: (slots, steps' ints, steps'
        floats, a P x P array, an output slot)."""
        P = self.P
        width = len(_FIELDS) + 2 * P + P * P
        return (np.zeros((self.S, P, P), dtype), np.zeros((steps, width), np.int32),
                np.zeros(steps, dtype), np.zeros((P, P), dtype), np.int32(0))

    def _name(self, mode, dtype, steps, *more):
        return "-".join(map(str, (mode, np.dtype(dtype), steps, *more, self.P, self.S)))

    def _function(self, dtype, steps):
        """The compiled VJP interpreter for `dtype` and a bucket of `steps`."""
        name = self._name("vjp", dtype, steps)

        def make():
            init, ints, ps, cot, slot = self._example(dtype, steps)
            return exported(name, jax.jit(self._raw_vjp(dtype, steps)),
                            (init, ints, ps, cot, slot, slot))
        return _interpreter(name, make)

    def _raw_vjp(self, dtype, steps):
        """The VJP interpreter as a function to trace (second order differentiates it
        again, the batched VJP maps it over points)."""
        key = (dtype, steps, version())  # the opcodes are the catalogue's as it is now
        if key in self._raw:
            return self._raw[key]
        P = self.P
        branches = _branches(P, dtype)

        def pullback(branch):
            return lambda x, y, i, p, g: jax.vjp(lambda x, y: branch(x, y, i, p), x, y)[1](g)
        pullbacks = [pullback(b) for b in branches]
        a0, a1, dst = (_FIELDS.index(k) for k in ("a0", "a1", "dst"))

        def run(init, ints, ps, cotangent, out_slot, n):
            def forward(k, vals):  # every slot is written once, so `vals` ends up holding all
                i = ints[k]
                x, y = vals[i[a0]], vals[i[a1]]
                return vals.at[i[dst]].set(lax.switch(i[0], branches, x, y, i, ps[k]))
            vals = lax.fori_loop(0, n, forward, init)

            def backward(j, grads):  # each step's own jax.vjp, in reverse order
                k = n - 1 - j
                i = ints[k]
                g = grads[i[dst]]
                gx, gy = lax.switch(i[0], pullbacks, vals[i[a0]], vals[i[a1]], i, ps[k], g)
                grads = grads.at[i[dst]].set(0)  # consumed
                return grads.at[i[a0]].add(gx).at[i[a1]].add(gy)
            grads = jnp.zeros_like(init).at[out_slot].set(cotangent)
            grads = lax.fori_loop(0, n, backward, grads)
            return vals[out_slot], grads

        self._raw[key] = run
        return run

    # Sides above this run the points of `vjps` one after another (lax.map), not side
    # by side (vmap): vmap batches conv2d's kernel with its input, and XLA's CPU
    # convolution ran that ~10x slower than the same convolutions in turn (16 points of
    # a conv2d at sides up to 64: 12.9 s against 1.3, the largest fuzz item's time).
    # At sides up to 8, vmap is twice as fast as lax.map.
    MAP_ABOVE = 8

    def _vjps_function(self, dtype, steps, points):
        """The VJP at `points` sets of inputs in one call (over the initial slots: the
        program and the cotangent are shared), compiled once per dtype, bucket and count."""
        name = self._name("vjps", dtype, steps, points)

        def make():
            raw = self._raw_vjp(dtype, steps)
            if self.P > self.MAP_ABOVE:
                def run(inits, *shared):
                    return lax.map(lambda init: raw(init, *shared), inits)
            else:
                run = jax.vmap(raw, in_axes=(0,) + (None,) * 5)
            init, ints, ps, cot, slot = self._example(dtype, steps)
            return exported(name, jax.jit(run),
                            (np.stack([init] * points), ints, ps, cot, slot, slot))
        return _interpreter(name, make)

    def vjps(self, program, points, cotangent):
        """The gradients (one array per input) at each of `points` (lists of inputs), in
        one call; None if the program does not fit the interpreter."""
        if self._other(program):
            return self._other(program).vjps(program, points, cotangent)
        encoded = self.encode(program)
        if encoded is None:
            return None
        dtype = program.np_dtype
        init = np.stack([self._init(encoded, xs, dtype) for xs in points])
        ints, ps, out_slot, n = encoded.args(dtype)
        _, grads = self._vjps_function(dtype, len(ints), len(points))(
            init, ints, ps, self._padded(cotangent, dtype), out_slot, n)
        grads = np.asarray(grads)
        return [[g[i, :s[0], :s[1]] for i, s in enumerate(program.inputs)] for g in grads]

    # A call of the VJP interpreter costs ~0.3 ms whatever the program, 0.7-0.9 of it
    # fixed (benchmarks/results/jax_batching.md), and a campaign's hunt checks cases one
    # after another (reports/search.py). So the hunt first asks for the VJPs of its next
    # BATCH cases: one call, the cases one after another inside it (lax.map: a vmap over
    # programs would make lax.switch run every branch), 0.24 of a call each, the same
    # answers bit for bit (400 drawn graphs); each check then takes its own (`run`).
    BATCH = 16

    def _batch_function(self, dtype, steps):
        """The VJP interpreter over BATCH cases, each its own program, in one call."""
        name = self._name("vjpbatch", dtype, steps, self.BATCH)

        def make():
            raw = self._raw_vjp(dtype, steps)

            def run(*batched):
                return lax.map(lambda case: raw(*case), batched)
            init, ints, ps, cot, slot = self._example(dtype, steps)
            return exported(name, jax.jit(run), tuple(np.stack([a] * self.BATCH) for a in
                                                      (init, ints, ps, cot, slot, slot)))
        return _interpreter(name, make)

    def prefetch(self, requests):
        """The VJPs of `requests`, (program, inputs, cotangent) each, BATCH at a time in
        one call each, kept for `run` to answer those very arguments (and forgotten at
        the next prefetch); a program the interpreter does not fit is left to `run`."""
        self._ready, groups = [], {}
        for program, inputs, cotangent in requests:
            encoded = None if self._other(program) else self.encode(program)
            if encoded is not None:
                groups.setdefault((program.np_dtype, len(encoded.ints)), []).append(
                    (program, inputs, cotangent, encoded))
        for (dtype, steps), group in groups.items():
            for start in range(0, len(group), self.BATCH):
                part = group[start:start + self.BATCH]
                cases = [self.vjp_args(e, x, c, dtype) for _, x, c, e in part]
                cases += [cases[-1]] * (self.BATCH - len(cases))  # (their answers unread)
                outs, grads = self._batch_function(dtype, steps)(
                    *(np.stack(column) for column in zip(*cases)))
                outs, grads = np.asarray(outs), np.asarray(grads)
                self._ready += [(p, x, c, e, version(), _result(p, outs[j], grads[j]))
                                for j, (p, x, c, e) in enumerate(part)]

    def _prefetched(self, program, inputs, cotangent):
        """The Result `prefetch` made for exactly these arguments (taken), else None."""
        for k, (p, x, c, encoded, at, result) in enumerate(self._ready):
            if (p.inputs, p.steps, p.dtype, at) == (program.inputs, program.steps,
                                                    program.dtype, version()) \
                    and _same_arrays([*x, c], [*inputs, cotangent]):
                del self._ready[k]
                self._last = ((p.inputs, p.steps, at), encoded)  # for jvp and hvp
                return result
        return None

    def _jvp_function(self, dtype, steps):
        """jax.jvp of the forward scan, compiled once per dtype and bucket."""
        name = self._name("jvp", dtype, steps)

        def make():
            branches = _branches(self.P, dtype)
            dst = _FIELDS.index("dst")
            a0, a1 = _FIELDS.index("a0"), _FIELDS.index("a1")

            def forward(init, ints, ps, out_slot, n):
                def step(k, vals):
                    i = ints[k]
                    y = lax.switch(i[0], branches, vals[i[a0]], vals[i[a1]], i, ps[k])
                    return vals.at[i[dst]].set(y)
                return lax.fori_loop(0, n, step, init)[out_slot]

            def run(init, tangent, ints, ps, out_slot, n):
                return jax.jvp(lambda v: forward(v, ints, ps, out_slot, n), (init,), (tangent,))
            init, ints, ps, _, slot = self._example(dtype, steps)
            return exported(name, jax.jit(run), (init, init, ints, ps, slot, slot))
        return _interpreter(name, make)

    def jvp(self, program, inputs, tangents):
        """(output, J ṫ): forward mode through the same compiled interpreter."""
        if self._other(program):
            return self._other(program).jvp(program, inputs, tangents)
        encoded = self.encode(program)
        if encoded is None:
            return plain_jvp(program, inputs, tangents)
        dtype = program.np_dtype
        tangent = self._slots(tangents, dtype)  # constants' tangents: 0
        out, t = self._jvp_function(dtype, len(encoded.ints))(
            self._init(encoded, inputs, dtype), tangent, *encoded.args(dtype))
        m, n = program.output_shape
        return np.asarray(out)[:m, :n], np.asarray(t)[:m, :n]

    def _hvp_function(self, dtype, steps):
        """jax.jvp of the compiled VJP along the inputs' tangents (forward over reverse:
        the derivative of Jᵀȳ along ṫ, H ṫ), compiled once per dtype and bucket."""
        name = self._name("hvp", dtype, steps)

        def make():
            run = self._raw_vjp(dtype, steps)

            def hvp(init, tangent, ints, ps, cotangent, out_slot, n):
                return jax.jvp(lambda v: run(v, ints, ps, cotangent, out_slot, n)[1], (init,),
                               (tangent,))[1]
            init, ints, ps, cot, slot = self._example(dtype, steps)
            return exported(name, jax.jit(hvp), (init, init, ints, ps, cot, slot, slot))
        return _interpreter(name, make)

    def hvp(self, program, inputs, cotangent, tangents):
        """H ṫ per input: second order through the same compiled interpreter."""
        if self._other(program):
            return self._other(program).hvp(program, inputs, cotangent, tangents)
        encoded = self.encode(program)
        if encoded is None:
            return plain_hvp(program, inputs, cotangent, tangents)
        dtype = program.np_dtype
        ints, ps, out_slot, n = encoded.args(dtype)
        hs = np.asarray(self._hvp_function(dtype, len(ints))(
            self._init(encoded, inputs, dtype), self._slots(tangents, dtype), ints, ps,
            self._padded(cotangent, dtype), out_slot, n))
        return [hs[i, :s[0], :s[1]] for i, s in enumerate(program.inputs)]

    def encode(self, program):
        """The program as an `Encoded`, or None if it does not fit (a side above P, too
        many slots or steps). The last one is kept: a check asks for the VJP, the JVP
        and the HVP of one program in a row (in float64 and float32 alike)."""
        if self._other(program):
            return self._other(program).encode(program)
        key = (program.inputs, program.steps, version())  # (the opcodes: the catalogue's)
        if self._last is None or self._last[0] != key:
            self._last = (key, self._encode(program))
        return self._last[1]

    def _encode(self, program):
        P, n_in = self.P, len(program.inputs)
        if max(max(s) for s in program.shapes) > P:
            return None
        shape = list(program.shapes[:n_in])
        slot = list(range(n_in))  # value index -> slot
        consts = []
        rows, ps = [], []  # per emitted step: (fields, ri, ci, map), pow's exponent

        def emit(op, args, out_shape, **kw):
            a = [slot[i] if isinstance(i, int) else i[0] for i in args] + [0, 0]
            shapes = [shape[slot[i]] if isinstance(i, int) else i[1] for i in args] + [(1, 1)] * 2
            dst = len(shape)
            # in _FIELDS' order; fields an opcode does not read are 0 (p: pow's exponent alone)
            rows.append(((op, a[0], a[1], dst, out_shape[0], out_shape[1], shapes[0][0],
                          shapes[0][1], shapes[1][0], shapes[1][1], kw.get("stride", 1),
                          kw.get("top", 0), kw.get("left", 0)),
                         kw.get("ri"), kw.get("ci"), kw.get("map")))
            ps.append(kw.get("p", 0.0))
            shape.append(out_shape)
            return dst

        if any(step.op != "const" and not compiled(CATALOGUE[step.op])
               for step in program.steps):
            return None
        for i, step in enumerate(program.steps):
            out_shape = program.shapes[n_in + i]
            at = step.attrs
            if step.op == "const":
                consts.append((len(shape), np.asarray(at["value"])))
                shape.append(out_shape)
                code_slot = len(shape) - 1
            elif step.op == "concat":  # a chain of two-operand concats
                axis = at["axis"]
                acc = step.args[0]
                if len(step.args) == 1:
                    code_slot = slot[acc]
                for b in step.args[1:]:
                    first = shape[slot[acc]] if isinstance(acc, int) else acc[1]
                    joined = ((first[0] + shape[slot[b]][0], first[1]) if axis == 0
                              else (first[0], first[1] + shape[slot[b]][1]))
                    code_slot = emit(opcode("concat", at), [acc, b], joined)
                    acc = (code_slot, joined)
            elif step.op == "getitem":
                ri, ci = np.zeros(P, int), np.zeros(P, int)
                r, c = _ix(at["rows"]), _ix(at["cols"])
                ri[:len(r)], ci[:len(c)] = r, c
                code_slot = emit(opcode("getitem", at), step.args, out_shape, ri=ri, ci=ci)
            elif step.op == "where":
                flat = np.zeros((P, P), int)
                mask = np.asarray(at["mask"], bool)
                flat[:mask.shape[0], :mask.shape[1]] = mask
                code_slot = emit(opcode("where", at), step.args, out_shape, map=flat.reshape(-1))
            elif CATALOGUE[step.op].slot == "gather":
                code_slot = emit(opcode(step.op, at), step.args, out_shape,
                                 map=movement_map(step.op, at, shape[slot[step.args[0]]], P))
            elif step.op == "conv2d":
                kshape = shape[slot[step.args[1]]]
                same = at["padding"] == "same"
                code_slot = emit(opcode("conv2d", at), step.args, out_shape, stride=at["stride"],
                                 top=(kshape[0] - 1) // 2 if same else 0,
                                 left=(kshape[1] - 1) // 2 if same else 0)
            else:
                code_slot = emit(opcode(step.op, at), step.args, out_shape,
                                 **({"p": float(at[SCALAR])} if SCALAR in at else {}))
            slot.append(code_slot)
        n = len(rows)
        steps = next((t for t in self.buckets if n <= t), None)
        if len(shape) > self.S or steps is None:
            return None
        # padded to the bucket with no-ops (all 0), which the loops never reach
        f = len(_FIELDS)
        ints = np.zeros((steps, f + 2 * P + P * P), np.int32)
        for k, (fields, ri, ci, flat) in enumerate(rows):
            ints[k, :f] = fields
            for start, part in ((f, ri), (f + P, ci), (f + 2 * P, flat)):
                if part is not None:
                    ints[k, start:start + len(part)] = part
        p_steps = np.zeros(steps, np.float64)
        p_steps[:n] = ps
        return Encoded(ints, p_steps, consts, slot[-1], n)

    def _slots(self, arrays, dtype):
        """The slot array with `arrays` in the first slots, each in its top-left corner."""
        slots = np.zeros((self.S, self.P, self.P), dtype)
        for i, x in enumerate(arrays):
            slots[i, :x.shape[0], :x.shape[1]] = x
        return slots

    def _padded(self, x, dtype):
        out = np.zeros((self.P, self.P), dtype)
        out[:x.shape[0], :x.shape[1]] = x
        return out

    def _init(self, encoded, inputs, dtype):
        """The initial slots: the inputs, then the constants."""
        init = self._slots(inputs, dtype)
        for at, value in encoded.consts:
            init[at, :value.shape[0], :value.shape[1]] = value
        return init

    def run(self, program, inputs, cotangent):
        if self._other(program):
            return self._other(program).run(program, inputs, cotangent)
        if self._ready:
            result = self._prefetched(program, inputs, cotangent)
            if result is not None:
                return result
        encoded = self.encode(program)
        if encoded is None:
            return plain_vjp(program, inputs, cotangent)
        dtype = program.np_dtype
        out, grads = self._function(dtype, len(encoded.ints))(
            *self.vjp_args(encoded, inputs, cotangent, dtype))
        return _result(program, np.asarray(out), np.asarray(grads))

    def vjp_args(self, encoded, inputs, cotangent, dtype):
        """The VJP interpreter's arguments for one case: (initial slots, steps' ints,
        steps' floats, the padded cotangent, output slot, steps to run)."""
        ints, ps, out_slot, n = encoded.args(dtype)
        return (self._init(encoded, inputs, dtype), ints, ps, self._padded(cotangent, dtype),
                out_slot, n)


def _result(program, out, grads):
    """The Result of a program from the interpreter's padded output and gradient slots."""
    m, n = program.output_shape
    return Result(out[:m, :n], [grads[i, :s[0], :s[1]] for i, s in enumerate(program.inputs)])


def _same_arrays(xs, ys):
    """The same arrays, bit for bit (shape, dtype and bytes)."""
    return len(xs) == len(ys) and all(
        x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()
        for x, y in ((np.asarray(a), np.asarray(b)) for a, b in zip(xs, ys)))
