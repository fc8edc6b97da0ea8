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

import json
from dataclasses import dataclass, field

import numpy as np

from mflow.ops import OPS
from mflow.shapes import ShapeError

DTYPES = ("float64", "float32")


class ProgramError(ValueError):
    """A program that cannot be run, with the step that is wrong."""


@dataclass(frozen=True)
class Step:
    op: str
    args: tuple = ()
    attrs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Program:
    inputs: tuple          # the shape of each input
    steps: tuple           # Step, in order
    dtype: str = "float64"
    shapes: tuple = field(init=False, repr=False, compare=False)  # of every value

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(tuple(int(n) for n in s) for s in self.inputs))
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
        for i, step in enumerate(self.steps):
            where = f"step {i} (value v{len(shapes)}, {step.op})"
            for a in step.args:
                if not isinstance(a, int) or not 0 <= a < len(shapes):
                    raise ProgramError(f"{where}: argument {a!r} does not refer to an earlier "
                                       f"value (0 to {len(shapes) - 1})")
            if step.op == "const":
                value = np.asarray(step.attrs.get("value"), dtype=np.float64)
                if step.args or value.ndim != 2 or value.size == 0:
                    raise ProgramError(f"{where}: a constant takes no arguments and a 2-D "
                                       "'value'")
                shapes.append(value.shape)
                continue
            if step.op not in OPS:
                raise ProgramError(f"{where}: unknown operation; known: {', '.join(sorted(OPS))}")
            op = OPS[step.op]
            if op.arity is not None and len(step.args) != op.arity:
                raise ProgramError(f"{where}: takes {op.arity} argument(s), got {len(step.args)}")
            unknown = set(step.attrs) - set(op.attrs)
            if unknown:
                raise ProgramError(f"{where}: unknown attributes {sorted(unknown)}; "
                                   f"{step.op} takes {sorted(op.attrs) or 'none'}")
            try:
                shapes.append(tuple(op.shape(*[shapes[a] for a in step.args], **step.attrs)))
            except ShapeError as e:
                raise ProgramError(f"{where}: {e}") from None
        return tuple(shapes)

    @property
    def output_shape(self):
        return self.shapes[-1]

    @property
    def np_dtype(self):
        return np.dtype(self.dtype)

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
        try:
            steps = [Step(s["op"], tuple(s.get("args", ())),
                          {k: _decode(v) for k, v in s.get("attrs", {}).items()})
                     for s in d["steps"]]
            inputs = tuple(tuple(s) for s in d["inputs"])
            return cls(inputs, tuple(steps), d.get("dtype", "float64"))
        except (KeyError, TypeError, AttributeError) as e:
            raise ProgramError(f"not a program: {type(e).__name__}: {e}") from None

    def to_json(self, **kw):
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_json(cls, text):
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ProgramError(f"not JSON: {e}") from None

    # --- as Python --------------------------------------------------------------

    def to_python(self, inputs="inputs", imports=True):
        """Python that builds this graph with mflow from a list of input arrays."""
        lines = ["import numpy as np", "", "import mflow", ""] if imports else []
        for i in range(len(self.inputs)):
            lines.append(f"x{i} = mflow.Node(np.asarray({inputs}[{i}], dtype=np.{self.dtype}), "
                         f"requires_grad=True)")
        names = [f"x{i}" for i in range(len(self.inputs))]
        for step in self.steps:
            name = f"v{len(names)}"
            lines.append(f"{name} = {_expression(step, [names[a] for a in step.args], self.dtype)}")
            names.append(name)
        lines.append(f"output = {names[-1]}")
        return "\n".join(lines) + "\n"


_OPERATORS = {"add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}",
              "matmul": "{0} @ {1}", "neg": "-{0}", "transpose": "{0}.T"}


def _expression(step, args, dtype):
    if step.op == "const":
        return f"mflow.Node(np.array({_encode(step.attrs['value'])!r}, dtype=np.{dtype}))"
    if step.op in _OPERATORS:
        return _OPERATORS[step.op].format(*args)
    if step.op == "pow":
        return f"{args[0]} ** {step.attrs.get('p', 2)!r}"
    if step.op == "getitem":
        return f"{args[0]}[{_index(step.attrs['rows'])}, {_index(step.attrs['cols'])}]"
    attrs = "".join(f", {k}={v!r}" for k, v in step.attrs.items())
    if step.op == "concat":
        return f"mflow.concat([{', '.join(args)}]{attrs})"
    return f"mflow.{step.op}({', '.join(args)}{attrs})"


def _index(i):
    if isinstance(i, slice):
        return f"{i.start}:{i.stop}:{i.step}"
    return repr(list(i))


def _encode(v):
    if isinstance(v, slice):
        return {"slice": [v.start, v.stop, v.step]}
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (tuple, list)):
        return [_encode(x) for x in v]
    return v


def _decode(v):
    if isinstance(v, dict) and set(v) == {"slice"}:
        return slice(*v["slice"])
    if isinstance(v, list):
        return tuple(_decode(x) for x in v)
    return v


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
