"""A program: the plain-data expression graph that every backend runs.

    Program(inputs=((2, 3), (3, 3)),
            steps=(Step("matmul", (0, 1)), Step("relu", (2,)), Step("sum", (3,), {"axis": 0})))

Values are numbered in order: the inputs first (x0, x1, ...), then one per
step; a step's `args` refer to earlier values, and the last value is the
output. A "const" step holds a constant matrix in its attrs ("value").

A program is JSON-serialisable (`to_json` / `from_json` round-trip exactly),
prints as Python that builds the same graph with mflow (`to_python`), and is
validated on construction: an unknown operation, a reference to a later value
or shapes that do not fit raise ProgramError naming the step.
"""

import copy
import json
import math
import zlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from mflow.shapes import ShapeError, normalise_index

from .catalogue import CATALOGUE

DTYPES = ("float64", "float32", "float16", "bfloat16")
HALF = ("float16", "bfloat16")  # checked by their own tolerance (tolerance.py, "Half precision")
UNIT = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "float16": 2.0 ** -11,
        "bfloat16": 2.0 ** -8}  # each dtype's unit roundoff, eps / 2


def np_dtype(name):
    """numpy's dtype for a name of DTYPES: bfloat16 is ml_dtypes' (as JAX's), imported
    only when asked for."""
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def storable(a):
    """An array as a .npy file can hold it: bfloat16 as float32, exactly (.npy would
    write it as raw void, 'V2'); files.read_array casts it back."""
    a = np.asarray(a)
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a
# Bounds on what a loaded program may ask for, so a damaged file cannot allocate gigabytes:
# far beyond what fuzzing draws (sides to 64, a few inputs, chains of a few thousand steps).
MAX_INPUTS, MAX_SIDE, MAX_STEPS = 64, 4096, 100_000
MAX_POWER = 16  # |p| of pow: fuzzing draws up to 3; x ** 1e308 only tests overflow


class ProgramError(ValueError):
    """A program that cannot be run, with the step that is wrong."""


class UnknownOperation(ProgramError):
    """A program with an operation the catalogue lacks: maybe one of an adapter's own,
    known once that adapter is loaded (`op`)."""

    def __init__(self, message, op):
        super().__init__(message)
        self.op = op


@dataclass(frozen=True)
class Step:
    """One operation on earlier values; its attributes complete with the
    operation's defaults (`Op.complete`), so every backend sees all of them."""
    op: str
    args: tuple = ()
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        op = CATALOGUE.get(self.op)
        if op is not None and op.attrs and isinstance(self.attrs, dict):
            object.__setattr__(self, "attrs", op.complete(self.attrs))


@dataclass(frozen=True)
class Program:
    inputs: tuple          # the shape of each input
    steps: tuple           # Step, in order
    dtype: str = "float64"
    shapes: tuple = field(init=False, repr=False, compare=False)  # of every value

    def __post_init__(self):
        try:
            inputs = tuple(tuple(int(n) for n in s) for s in self.inputs)
        except (TypeError, ValueError) as e:
            raise ProgramError(f"input shapes must be pairs of ints: {e}") from None
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "shapes", self._check())

    def _check(self):
        if self.dtype not in DTYPES:
            raise ProgramError(f"dtype must be one of {DTYPES}; got {self.dtype!r}")
        if not self.inputs:
            raise ProgramError("a program needs at least one input")
        shapes = list(self.inputs)
        for s in shapes:
            if len(s) != 2 or min(s) < 1:
                raise ProgramError(f"input shapes must be (rows, cols) >= 1; got {s}")
        steps = list(self.steps)
        for i, step in enumerate(steps):
            if not isinstance(step, Step):
                raise ProgramError(f"step {i}: not a Step; got {type(step).__name__}")
            where = f"step {i} (value v{len(shapes)}, {step.op})"
            for a in step.args:
                if not _is_int(a) or not 0 <= a < len(shapes):
                    raise ProgramError(f"{where}: argument {a!r} does not refer to an earlier "
                                       f"value (0 to {len(shapes) - 1})")
            if step.op == "const":
                try:
                    value = np.asarray(step.attrs.get("value"), dtype=np.float64)
                except (TypeError, ValueError) as e:
                    raise ProgramError(f"{where}: 'value' is not a matrix of numbers ({e})") \
                        from None
                if step.args or value.ndim != 2 or value.size == 0 or \
                        max(value.shape) > MAX_SIDE or not np.all(np.isfinite(value)):
                    raise ProgramError(f"{where}: a constant takes no arguments and a 2-D, "
                                       f"finite 'value' of sides at most {MAX_SIDE}")
                shapes.append(value.shape)
                continue
            if step.op not in CATALOGUE:
                raise UnknownOperation(f"{where}: unknown operation; known: "
                                       f"{', '.join(sorted(CATALOGUE))}", step.op)
            op = CATALOGUE[step.op]
            if op.arity is not None and len(step.args) != op.arity:
                raise ProgramError(f"{where}: takes {op.arity} argument(s), got {len(step.args)}")
            if not isinstance(step.attrs, dict):
                raise ProgramError(
                    f"{where}: attrs must be a dict; got {type(step.attrs).__name__}")
            unknown = set(step.attrs) - set(op.attrs)
            if unknown:
                raise ProgramError(f"{where}: unknown attributes {sorted(unknown)}; "
                                   f"{step.op} takes {sorted(op.attrs) or 'none'}")
            operands = [shapes[a] for a in step.args]
            p = step.attrs.get("p") if step.op == "pow" else None
            if isinstance(p, (int, float)) and not isinstance(p, bool) and \
                    not abs(p) <= MAX_POWER:
                raise ProgramError(f"{where}: exponent {p!r}; a program's |p| is at most "
                                   f"{MAX_POWER}")
            try:
                if step.op == "getitem":  # concrete, bounded indices: every backend reads these
                    rows, cols = normalise_index((step.attrs["rows"], step.attrs["cols"]),
                                                 operands[0])
                    step = steps[i] = Step("getitem", step.args, {"rows": rows, "cols": cols})
                shapes.append(tuple(op.shape(*operands, **step.attrs)))
            except (ShapeError, TypeError, ValueError, OverflowError) as e:
                raise ProgramError(f"{where}: {e}") from None
        object.__setattr__(self, "steps", tuple(steps))
        return tuple(shapes)

    @property
    def output_shape(self):
        return self.shapes[-1]

    @property
    def np_dtype(self):
        return np_dtype(self.dtype)

    @cached_property
    def digest(self):
        """crc32 of the program's text: seeds what a check draws for it (probes, modes),
        so that a replay draws the same. Computed once: the text costs ~50 µs."""
        return zlib.crc32(repr(self).encode())

    def with_dtype(self, dtype):
        """The same program in another dtype, without checking it again (the shapes do
        not depend on the dtype). Its constants are the values it had in its own dtype:
        a float32 program's 1.683005 is float32's 1.6830049753..., in float64 too, as its
        inputs are (a constant drawn equal to an input, sub(x, c), is an exact zero in
        the engine's float32 and must be one in the float64 references: 4e-8 there made
        torch's second order of cumprod divide by it)."""
        if dtype not in DTYPES:
            raise ProgramError(f"dtype must be one of {DTYPES}; got {dtype!r}")
        other = copy.copy(self)
        other.__dict__.pop("digest", None)  # the text names the dtype
        object.__setattr__(other, "dtype", dtype)
        if self.dtype != "float64" and any(s.op == "const" for s in self.steps):
            object.__setattr__(other, "steps", tuple(
                Step("const", (), {"value": tuple(map(tuple, np.asarray(
                    s.attrs["value"], self.np_dtype).astype(np.float64).tolist()))})
                if s.op == "const" else s for s in self.steps))
        return other

    def ops(self):
        """The operations used, in order of first use."""
        return list(dict.fromkeys(s.op for s in self.steps if s.op != "const"))

    def __len__(self):
        return len(self.steps)

    # --- serialisation --------------------------------------------------------

    def to_dict(self):
        return {"dtype": self.dtype, "inputs": [list(s) for s in self.inputs],
                "steps": [{"op": s.op, "args": list(s.args),
                           "attrs": {k: _encode(v) for k, v in s.attrs.items()}}
                          for s in self.steps]}

    @classmethod
    def from_dict(cls, d):
        """The program a `to_dict` made, validated field by field (a saved report
        may be damaged or hostile): ProgramError names the field."""
        if not isinstance(d, dict):
            raise ProgramError(f"a program is a JSON object; got {_kind(d)}")
        inputs, steps = d.get("inputs"), d.get("steps")
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_INPUTS:
            raise ProgramError(f"'inputs' must be a list of 1 to {MAX_INPUTS} shapes; "
                               f"got {_kind(inputs)}")
        for i, shape in enumerate(inputs):
            if not (isinstance(shape, list) and len(shape) == 2
                    and all(_is_int(n) and 1 <= n <= MAX_SIDE for n in shape)):
                raise ProgramError(f"'inputs'[{i}] must be [rows, cols], each 1 to {MAX_SIDE}; "
                                   f"got {_short(shape)}")
        if not isinstance(steps, list) or len(steps) > MAX_STEPS:
            raise ProgramError(f"'steps' must be a list of at most {MAX_STEPS:,} steps; "
                               f"got {_kind(steps)}")
        parsed = []
        for i, step in enumerate(steps):
            where = f"'steps'[{i}]"
            if not isinstance(step, dict) or not isinstance(step.get("op"), str):
                raise ProgramError(f"{where} must be an object with a string 'op'; "
                                   f"got {_short(step)}")
            args, attrs = step.get("args", []), step.get("attrs", {})
            if not isinstance(args, list) or not all(_is_int(a) for a in args):
                raise ProgramError(f"{where}.args must be a list of ints; got {_short(args)}")
            if not isinstance(attrs, dict):
                raise ProgramError(f"{where}.attrs must be an object; got {_kind(attrs)}")
            try:
                decoded = {str(k): _decode(v) for k, v in attrs.items()}
            except (TypeError, ValueError) as e:
                raise ProgramError(f"{where}.attrs: {e}") from None
            parsed.append(Step(step["op"], tuple(args), decoded))
        dtype = d.get("dtype", "float64")
        if dtype not in DTYPES:
            raise ProgramError(f"'dtype' must be one of {DTYPES}; got {_short(dtype)}")
        return cls(tuple(tuple(s) for s in inputs), tuple(parsed), dtype)

    def to_json(self, **kw):
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_json(cls, text):
        try:
            d = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
            raise ProgramError(f"not JSON: {e}") from None
        return cls.from_dict(d)

    # --- as Python --------------------------------------------------------------

    def to_python(self, inputs="inputs", imports=True):
        """Python that builds this graph with mflow from a list of input arrays."""
        lines = ["import numpy as np", "", "import mflow", ""] if imports else []
        if imports and self.dtype == "bfloat16":
            lines[0:1] = ["import ml_dtypes", "import numpy as np"]
        for i in range(len(self.inputs)):
            lines.append(f"x{i} = mflow.Node(np.asarray({inputs}[{i}], "
                         f"dtype={_np_name(self.dtype)}), requires_grad=True)")
        names = [f"x{i}" for i in range(len(self.inputs))]
        for step in self.steps:
            name = f"v{len(names)}"
            lines.append(f"{name} = {_expression(step, [names[a] for a in step.args], self.dtype)}")
            names.append(name)
        lines.append(f"output = {names[-1]}")
        return "\n".join(lines) + "\n"


def _np_name(dtype):
    return "ml_dtypes.bfloat16" if dtype == "bfloat16" else f"np.{dtype}"


def _expression(step, args, dtype):
    """How the printer writes a step: its record's `python` (a format of the operands,
    or a function of them and the attributes), else mflow.NAME(operands, attr=value)."""
    if step.op == "const":
        return f"mflow.Node(np.array({_encode(step.attrs['value'])!r}, dtype={_np_name(dtype)}))"
    how = CATALOGUE[step.op].python
    if callable(how):
        return how(args, step.attrs)
    if how is not None:
        return how.format(*args)
    attrs = "".join(f", {k}={v!r}" for k, v in step.attrs.items())
    import mflow
    if hasattr(mflow, step.op):
        return f"mflow.{step.op}({', '.join(args)}{attrs})"
    return f"mflow.apply({step.op!r}, {', '.join(args)}{attrs})"  # an operation of a user's


def _encode(v):
    if isinstance(v, slice):
        return {"slice": [v.start, v.stop, v.step]}
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (tuple, list)):
        return [_encode(x) for x in v]
    return v


def _decode(v):
    """An attribute value from JSON: a slice, a tuple (of ints, or a constant's rows),
    a number, a string, None. Anything else is an error."""
    if isinstance(v, dict):
        bounds = v.get("slice")
        if set(v) != {"slice"} or not isinstance(bounds, list) or len(bounds) != 3 or \
                not all(b is None or _is_int(b) for b in bounds):
            raise ValueError(f"not an attribute value: {_short(v)} (a slice is "
                             '{"slice": [start, stop, step]} of ints or null)')
        return slice(*bounds)
    if isinstance(v, list):
        if len(v) > MAX_SIDE:
            raise ValueError(f"a list of {len(v):,} values is longer than {MAX_SIDE}")
        return tuple(_decode(x) for x in v)
    if v is None or isinstance(v, (bool, str)) or _is_int(v):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{v} is not a finite number")
        return v
    raise ValueError(f"not an attribute value: {_short(v)}")


def _no_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _kind(v):
    return type(v).__name__ if not isinstance(v, (list, dict)) else f"a {type(v).__name__} " \
        f"of {len(v)}"


def _short(v):
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def live_values(args, output):
    """The values `output` depends on, itself included: `args[i]` lists the
    operands of value i (empty for an input or a constant). One sweep from the
    output down; the strategies and the reducer both drop dead steps with it."""
    live = {output}
    for i in range(output, -1, -1):
        if i in live:
            live.update(args[i])
    return live


def interpret(program, ops, leaf, constant, inputs):
    """Run a program on any backend, op by op: `ops` maps an operation's name to
    its function there, `leaf` and `constant` make the backend's values from
    arrays. Returns every value (inputs first, the output last)."""
    values = [leaf(x) for x in inputs]
    dtype = program.np_dtype
    for step in program.steps:
        if step.op == "const":
            values.append(constant(np.asarray(step.attrs["value"], dtype=dtype)))
        else:
            values.append(ops[step.op](*[values[a] for a in step.args], **step.attrs))
    return values


@dataclass(frozen=True)
class Case:
    """A program with its inputs and the cotangent of its output: one check."""
    program: Program
    inputs: tuple
    cotangent: np.ndarray

    def __repr__(self):  # what Hypothesis prints for a falsifying example
        arrays = ", ".join(np.array2string(x, precision=17, separator=", ") for x in self.inputs)
        return (f"Case(program={self.program!r},\n     inputs=[{arrays}],\n     cotangent="
                f"{np.array2string(self.cotangent, precision=17, separator=', ')})")
