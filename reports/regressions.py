"""Regression reports: a failing case saved so that it replays forever after.

A report is a folder (default reports/regressions/<signature>/):

    report.json     what failed: the verdict (every failed comparison, with its
                    tolerance and reason), the signature, the blamed step, library
                    versions, the Hypothesis reproduction line, the date, the
                    size before and after reduction
    program.json    the program (oracles.program.Program.to_json)
    x0.npy ...      the exact inputs and the cotangent (cotangent.npy); every
                    answer, the engine's and each oracle's (engine_forward.npy,
                    torch_grad_x0.npy, jax_..., fd_x0_estimate.npy, ...; listed
                    under "answers"), and the reference the reproducer compares
                    with (expected_*.npy): lossless, never pickled
    reproduce.py    needs only numpy and mflow: rebuilds the graph, runs backward,
                    prints the mismatch against the saved references
    seen/           one empty file per time the same failure was found again

Writing is atomic: everything goes into a temporary folder beside the final
one, renamed into place in one step, so a run killed at any moment leaves either
a complete report or none. Two workers finding the same failure at once: one
rename wins, the other counts itself in seen/. Loading validates every field
and executes nothing.
"""

import datetime
import hashlib
import json
import os
import platform
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
from mflow.oracles.program import (
    DTYPES,
    Case,
    Program,
    ProgramError,
    UnknownOperation,
    np_dtype,
    storable,
)

from . import files
from .files import MAX_JSON_BYTES, ReportError

__all__ = ["ReportError", "load", "save", "reports", "signature"]

DEFAULT_DIR = Path("reports") / "regressions"  # relative to where the suite runs
ARCHIVE = "archive"
FORMAT = 1


def signature(failure, blamed=None, calls=None):
    """What makes two failures the same bug, named after it, not after the case:
    - a rule wrong alone (blamed): the kind, the rule, what of it is wrong (its
      forward, which operand's gradient, the exception it raised) and its variant
      (drawn attributes, broadcasting, one value used twice): the same bug found in
      many graphs is one report, two bugs in one rule are two;
    - every rule right alone (blamed == {}): the kind, "combine", and which
      operations read a value that more than one place uses (fan-out);
    - an engine session's (`calls`): the kind and the kinds of its calls in order;
    - otherwise (a reference problem, nothing looked for): the kind, the pair that
      disagreed, the operations present and the exception raised."""
    v = failure.verdict
    kind = type(failure).__name__
    raised = (v.errors.get("engine") or "").split(":", 1)[0]
    if calls is not None:  # an engine session's: the kinds of its calls, the last one failed
        op = "session"
        parts = [kind, op, ",".join(c["call"] for c in calls), raised]
    elif blamed:
        op = blamed["op"]
        parts = [kind, op, blamed.get("what", ""), json.dumps(blamed.get("variant"),
                                                              sort_keys=True), raised]
    elif blamed is not None:
        op = "combine"
        parts = [kind, op, ",".join(_fanout_readers(v.case.program)), raised]
    else:
        failed = v.failures[0] if v.failures else None
        ops = v.case.program.ops()
        op = ops[-1] if ops else "case"
        parts = [kind, "-".join(failed.pair) if failed else "", ",".join(sorted(set(ops))),
                 raised]
    return f"{kind}-{op}-{hashlib.sha1('|'.join(parts).encode()).hexdigest()[:10]}"


def _fanout_readers(program):
    """The operations that read a value used more than once (the places where
    gradients must be summed), sorted; "same operand" marks one step reading it twice."""
    uses = {}
    for step in program.steps:
        for a in step.args:
            uses[a] = uses.get(a, 0) + 1
    readers = set()
    for step in program.steps:
        if any(uses[a] > 1 for a in step.args):
            twice = len(set(step.args)) < len(step.args)
            readers.add(step.op + (" same operand" if twice else ""))
    return sorted(readers) or ["none"]


def _versions():
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("torch", "jax", "hypothesis", "mflow"):
        try:
            from importlib.metadata import version
            out[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing package is recorded as such
            out[name] = None
    return out


def save(failure, directory=DEFAULT_DIR, reproduction="", extra=None, blamed=None,
         session=None):
    """Save the failure's case once; a second find of the same signature is
    counted. Returns the report's folder. Runs nothing: `blamed` is the blame the
    caller found (reports.reduce.blame_and_save), {} if every step's rule agreed
    alone, None if none was looked for. `extra` holds the engine's record (its
    adapter's spec and version: oracles.engine.engine_record), so that the gate,
    `list` and reproduce.py replay that engine. `session`: (dtype, calls) of an engine
    session's failure (reports/sequence.py), saved in calls.json beside the case of the
    call that failed (the last one), and replayed call by call.
    Imports nothing that runs an engine: the reports that render read this module."""
    from mflow.oracles.verdict import EngineBug
    v = failure.verdict
    case = v.case
    directory = files.folder(directory)
    calls = None if session is None else session[1]
    name = signature(failure, blamed, calls)
    final = directory / name
    if os.path.lexists(final):
        _count(final)
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=directory))
    try:
        (tmp / "program.json").write_text(case.program.to_json(indent=1))
        for i, x in enumerate(case.inputs):
            np.save(tmp / f"x{i}.npy", storable(x), allow_pickle=False)
        np.save(tmp / "cotangent.npy", storable(case.cotangent), allow_pickle=False)
        ref = v.results.get("torch") or v.results.get("jax")
        if ref is not None:
            np.save(tmp / "expected_forward.npy", ref.forward, allow_pickle=False)
            for i, g in enumerate(ref.grads):
                np.save(tmp / f"expected_grad_x{i}.npy", np.asarray(g), allow_pickle=False)
        # forward mode and second order, where they were checked: the tangent and torch's
        # answers, which reproduce.py replays too
        for i, t in enumerate(v.tangents if (v.jvps or v.hvps) else ()):
            np.save(tmp / f"tangent_x{i}.npy", storable(t), allow_pickle=False)
        if "torch" in v.jvps:
            np.save(tmp / "expected_jvp.npy", np.asarray(v.jvps["torch"]), allow_pickle=False)
        for i, h in enumerate(v.hvps.get("torch", ())):
            np.save(tmp / f"expected_hvp_x{i}.npy", np.asarray(h), allow_pickle=False)
        answers = _save_answers(tmp, v.results, v.probes, v.jvps, v.hvps)
        if session is not None:
            save_calls(tmp, *session)
        report = {
            "format": FORMAT,
            "signature": name,
            "failure": type(failure).__name__,
            # a guard: a case the references once disagreed on, replayed so that the suite
            # stays right there; never held against an engine
            "guard": not isinstance(failure, EngineBug),
            "engine": v.engine_name,
            # how to rebuild the engine (its adapter's module:attribute) and its version:
            # given in `extra` by the caller
            "engine_spec": None,
            "engine_version": None,
            "message": str(failure).split("\nFalsifying example")[0],
            # numbers as Python floats: a float32 one would be written as a string
            "comparisons": [{"what": c.what, "pair": list(c.pair), "abs_err": float(c.abs_err),
                             "rel_err": float(c.rel_err), "worst": list(map(str, c.worst)),
                             "tolerance": float(c.tolerance), "reason": c.reason}
                            for c in v.failures],
            "errors": v.errors,
            "blame": blamed or ("every step's rule agrees alone: the fault is in how "
                                "contributions combine (accumulation, fan-out)"
                                if isinstance(failure, EngineBug) and blamed is not None
                                else None),
            "answers": answers,
            "session": None if calls is None else {
                "calls": len(calls), "failed": len(calls) - 1,
                "kinds": [c["call"] for c in calls]},
            "steps": len(case.program),
            "inputs": len(case.inputs),
            "reproduction": reproduction,
            "versions": _versions(),
            "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **(extra or {}),
        }
        if calls is not None:
            last = calls[-1]
            of = f" of v{last['node']}" if "node" in last else ""
            report["blame"] = (f"call {len(calls) - 1} ({last['call']}{of}): the first call "
                               "whose answer disagreed")
        (tmp / "report.json").write_text(json.dumps(report, indent=1, default=str))
        spec = report["engine_spec"] if isinstance(report["engine_spec"], str) and \
            report["engine_spec"] else "mflow"
        (tmp / "reproduce.py").write_text(_reproducer(case, _tolerances(v), spec) if calls
                                          is None else _session_reproducer(spec))
        (tmp / "seen").mkdir()
        try:
            os.rename(tmp, final)  # atomic: the report appears whole or not at all
        except OSError:  # another worker saved the same signature first
            shutil.rmtree(tmp, ignore_errors=True)
            _count(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def machine():
    """The machine a record comes from: MFLOW_MACHINE (--mflow-machine), else the host."""
    import socket
    return os.environ.get("MFLOW_MACHINE") or socket.gethostname()


def _save_answers(folder, results, probes, jvps=None, hvps=None):
    """Every answer of the check, the engine's and each oracle's, as .npy files
    named WHO_forward and WHO_grad_xI (torch32: torch in float32, the rounding
    gauge); finite differences as their probes: fd_xI_directions, _estimate (of
    ⟨gradient, direction⟩), _error (its bound) and _valid (False: across a kink).
    Forward mode's J ṫ as WHO_jvp, second order's H ṫ as WHO_hvp_xI.
    Returns {who: [file names]}."""
    saved = {}
    answers = [(who, {f"{who}_forward": r.forward,
                      **{f"{who}_grad_x{i}": g for i, g in enumerate(r.grads)}})
               for who, r in results.items()]
    answers += [(f"{who} jvp", {f"{who}_jvp": t}) for who, t in (jvps or {}).items()]
    answers += [(f"{who} hvp", {f"{who}_hvp_x{i}": h for i, h in enumerate(hs)})
                for who, hs in (hvps or {}).items()]
    if probes:
        answers.append(("fd", {f"fd_x{i}_{name}": getattr(p, name) for i, p in enumerate(probes)
                               for name in ("directions", "estimate", "error", "valid")}))
    for who, arrays in answers:
        saved[who] = []
        for name, a in arrays.items():
            try:  # an engine's answer may be anything: object arrays cannot be saved unpickled
                np.save(folder / f"{name}.npy", storable(a), allow_pickle=False)
                saved[who].append(f"{name}.npy")
            except (ValueError, TypeError) as e:
                (folder / f"{name}.txt").write_text(f"not saved as .npy ({e}):\n{a!r}"[:100_000])
                saved[who].append(f"{name}.txt")
    return saved


def is_guard(report):
    """A report of the references disagreeing (reports saved before the field: by kind)."""
    return bool(report.get("guard", report.get("failure") == "ReferenceProblem"))


def recorded_engine(report):
    """The spec of the engine a report was made on (reports saved before specs were
    recorded: "mflow" if made on mflow, else None, unknown)."""
    spec = report.get("engine_spec")
    if isinstance(spec, str) and spec:
        return spec
    return "mflow" if report.get("engine") == "mflow" else None


def same_engine(a, b):
    """Whether two specs name one adapter ("pkg.mod" is "pkg.mod:engine")."""
    def norm(spec):
        spec = spec or "mflow"
        return spec if ":" in spec or spec == "mflow" else f"{spec}:engine"
    return norm(a) == norm(b)


def _count(folder):
    """One more find of the report in `folder`: a new empty file in its seen/ (refused,
    UnsafeFolder, where the report or its seen/ is a link or not a folder)."""
    seen = files.folder(files.folder(folder, create=False) / "seen")
    fd = os.open(seen / uuid.uuid4().hex, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
    os.close(fd)


# What a report may ask a replay for, so that one file cannot make the gate allocate
# gigabytes or run for hours (a 4096x4096 input made finite differences allocate 3.75 GiB;
# 80,000 steps replayed for over 200 s): far beyond what fuzzing draws (sides to 64,
# chains of 2,000 steps), with the references' time limit (checker.REFERENCE_LIMIT) behind.
MAX_REPORT_SIDE, MAX_REPORT_STEPS = 256, 5_000


class NotHere(ReportError):
    """A report whose program has an operation the catalogue lacks (`op`): one of the
    adapter's own it was made on (`engine`, as recorded), known once that adapter is
    named on the command line."""

    def __init__(self, message, op, engine):
        super().__init__(message)
        self.op, self.engine = op, engine


def load(folder):
    """(Case, report dict) from a report folder, validated; ReportError names
    the file and the field when anything is missing or malformed. Reads only
    regular files inside the folder (no symlinks, FIFOs or devices) through
    `files`, bounds every size before reading, checks an array's header before
    allocating it, refuses programs past MAX_REPORT_STEPS steps or sides past
    MAX_REPORT_SIDE and values that are not finite, and executes nothing."""
    folder = Path(folder)
    path = folder / "report.json"
    report = files.read_json(path)
    for field, kind in (("format", int), ("signature", str), ("failure", str),
                        ("inputs", int), ("comparisons", list)):
        if not isinstance(report.get(field), kind) or isinstance(report.get(field), bool):
            raise ReportError(f"{path}: field {field!r} is missing or not a {kind.__name__}")
    if report["format"] != FORMAT:
        raise ReportError(f"{path}: format {report['format']} is not {FORMAT}")
    if not isinstance(report.get("guard", False), bool):
        raise ReportError(f"{path}: field 'guard' is not true or false")
    if not isinstance(report.get("session"), (dict, type(None))):
        raise ReportError(f"{path}: field 'session' is not an object")
    if report.get("session"):
        load_calls(folder)  # whole and valid, as the case is (the replay reads it again)
    program_path = folder / "program.json"
    try:
        program = Program.from_json(files.read_bytes(program_path, MAX_JSON_BYTES).decode())
    except UnknownOperation as e:
        raise NotHere(f"{program_path}: {e}", e.op, recorded_engine(report)) from None
    except (ProgramError, UnicodeDecodeError) as e:
        raise ReportError(f"{program_path}: {e}") from None
    if len(program) > MAX_REPORT_STEPS:
        raise ReportError(f"{program_path}: {len(program):,} steps, more than the "
                          f"{MAX_REPORT_STEPS:,} a report may replay")
    side = max(max(s) for s in program.shapes)
    if side > MAX_REPORT_SIDE:
        raise ReportError(f"{program_path}: a value of side {side}, more than the "
                          f"{MAX_REPORT_SIDE} a report may replay")
    if len(program.inputs) != report["inputs"]:
        raise ReportError(f"{path}: field 'inputs' says {report['inputs']}, the program has "
                          f"{len(program.inputs)}")
    arrays = [files.read_array(folder / f"x{i}.npy", shape, program.dtype)
              for i, shape in enumerate(program.inputs)]
    arrays.append(files.read_array(folder / "cotangent.npy", program.output_shape,
                                   program.dtype))
    for i, a in enumerate(arrays):
        if not np.all(np.isfinite(a)):
            name = f"x{i}.npy" if i < len(program.inputs) else "cotangent.npy"
            raise ReportError(f"{folder / name}: holds values that are not finite")
    return Case(program, tuple(arrays[:-1]), arrays[-1]), report


MAX_CALLS = 500  # calls a session's report may replay (the machine makes a dozen a run)
CALLS = {"leaf": (), "build": ("program", "on"), "read": ("node",), "vjp": ("node",),
         "jvp": ("node",), "assign": ("node",), "hvp": ("node",), "backward": ("node",),
         "grad": ("node",), "zero_grad": ("node",)}


def save_calls(folder, dtype, calls):
    """A session's calls (reports/sequence.py) as calls.json, their arrays as
    callK_value.npy, callK_inputI.npy and callK_cotangent.npy (names made from the
    call's number, never read from the JSON)."""
    out = []
    for k, call in enumerate(calls):
        entry = {key: value for key, value in call.items()
                 if key not in ("value", "inputs", "cotangent", "program")}
        if "program" in call:
            entry["program"] = call["program"].to_dict()
        arrays = [(f"call{k}_{key}.npy", call[key]) for key in ("value", "cotangent")
                  if key in call]
        arrays += [(f"call{k}_input{i}.npy", x) for i, x in enumerate(call.get("inputs", ()))]
        if "value" in call and call["call"] == "leaf":
            entry["shape"] = list(np.shape(call["value"]))
        for name, a in arrays:
            np.save(folder / name, storable(a), allow_pickle=False)
        out.append(entry)
    (folder / "calls.json").write_text(json.dumps({"format": FORMAT, "dtype": dtype,
                                                   "calls": out}, indent=1, default=str))


def load_calls(folder):
    """(dtype, calls) of a session's report, validated as `load` validates a case: every
    call of a known kind, every node it names made before it (and depending on a leaf
    where it is differentiated or read), shapes and sizes bounded, arrays of the shapes
    the calls imply and finite; executes nothing."""
    folder = Path(folder)
    path = folder / "calls.json"
    data = files.read_json(path)
    dtype, raw = data.get("dtype"), data.get("calls")
    if data.get("format") != FORMAT or dtype not in DTYPES or not isinstance(raw, list) or \
            not 0 < len(raw) <= MAX_CALLS:
        raise ReportError(f"{path}: format {FORMAT}, a dtype of {DTYPES} and 1 to "
                          f"{MAX_CALLS:,} calls expected")
    shapes, has_leaf, calls, leaves = [], [], [], set()

    def array(name, shape):
        a = files.read_array(folder / name, shape, dtype)
        if not np.all(np.isfinite(a)):
            raise ReportError(f"{folder / name}: holds values that are not finite")
        return a

    for k, c in enumerate(raw):
        where = f"{path}: call {k}"
        if not isinstance(c, dict) or c.get("call") not in CALLS or \
                any(key not in c for key in CALLS[c["call"]]):
            raise ReportError(f"{where}: not one of {sorted(CALLS)} with its fields")
        kind, call = c["call"], {"call": c["call"]}
        if kind == "leaf":
            shape = c.get("shape")
            if not (isinstance(shape, list) and len(shape) == 2 and all(
                    isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_REPORT_SIDE
                    for n in shape)):
                raise ReportError(f"{where}: 'shape' is not two sides of 1 to "
                                  f"{MAX_REPORT_SIDE}")
            call.update(how=str(c.get("how", "fresh"))[:40], value=array(
                f"call{k}_value.npy", tuple(shape)))
            call.update({key: c[key] for key in ("of", "eta") if key in c})
            shapes.append(tuple(shape))
            has_leaf.append(True)
            leaves.add(len(shapes) - 1)
        elif kind == "build":
            try:
                program = Program.from_dict(c["program"])
            except UnknownOperation as e:
                raise NotHere(f"{where}: {e}", e.op, None) from None
            except (ProgramError, TypeError, AttributeError) as e:
                raise ReportError(f"{where}: {e}") from None
            on = c["on"]
            if program.dtype != dtype or len(program) > MAX_REPORT_STEPS or \
                    max(max(s) for s in program.shapes) > MAX_REPORT_SIDE:
                raise ReportError(f"{where}: a program of dtype {dtype}, at most "
                                  f"{MAX_REPORT_STEPS:,} steps and sides of "
                                  f"{MAX_REPORT_SIDE} expected")
            if not (isinstance(on, list) and len(on) <= len(program.inputs) and all(
                    isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(shapes)
                    and shapes[i] == program.inputs[j] for j, i in enumerate(on))):
                raise ReportError(f"{where}: 'on' does not name earlier values of the "
                                  "program's input shapes")
            fresh = program.inputs[len(on):]
            leaves |= set(range(len(shapes), len(shapes) + len(fresh)))
            call.update(program=program, on=on, inputs=[
                array(f"call{k}_input{i}.npy", shape) for i, shape in enumerate(fresh)])
            known = [has_leaf[i] for i in on] + [True] * len(fresh)
            for step in program.steps:
                known.append(any(known[a] for a in step.args))
            if c.get("read", False) is not False:
                if c["read"] is not True or not known[-1]:
                    raise ReportError(f"{where}: 'read' is true only for a graph on a leaf")
                call["read"] = True
            shapes += program.shapes[len(on):]
            has_leaf += known[len(on):]
        else:
            node = c["node"]
            if not (isinstance(node, int) and not isinstance(node, bool) and
                    0 <= node < len(shapes) and has_leaf[node]):
                raise ReportError(f"{where}: 'node' is not an earlier value on a leaf")
            call["node"] = node
            if kind in ("vjp", "hvp", "backward"):
                call["cotangent"] = array(f"call{k}_cotangent.npy", shapes[node])
            if kind in ("assign", "grad", "zero_grad") and node not in leaves:
                raise ReportError(f"{where}: 'node' is not a leaf")
            if kind == "assign":
                call["value"] = array(f"call{k}_value.npy", shapes[node])
                shapes.append(shapes[node])
                has_leaf.append(True)
                leaves.add(len(shapes) - 1)
        calls.append(call)
    return dtype, calls


def reports(directory=DEFAULT_DIR):
    """Every saved report folder (not the archive, no link), sorted."""
    directory = Path(directory)
    return [directory / name for name in files.entries(directory)
            if not name.startswith(".") and name != ARCHIVE and files.is_folder(directory / name)]


def strays(directory=DEFAULT_DIR):
    """What else lies in a corpus where reports would (a link, a file, a FIFO): named by
    `list`, never followed or replayed."""
    directory = Path(directory)
    return [directory / name for name in files.entries(directory)
            if not name.startswith(".") and name != ARCHIVE
            and not files.is_folder(directory / name)]


def _tolerances(verdict):
    """The norm-wise tolerance per array the verdict used in the case's dtype, for
    reproduce.py (none where the check stopped before computing one)."""
    dtype = verdict.case.program.dtype
    return {name: float(tol) for (_, name, at), (tol, _) in verdict.tolerances.items()
            if at == dtype}


def expected(folder, name, shape, dtype=np.float64):
    """A saved array `name`.npy of `shape` and `dtype` in a report folder (a reference:
    float64), read through the bounded reader (reproduce.py); None if there is none."""
    path = Path(folder) / f"{name}.npy"
    if not os.path.lexists(path):
        return None
    return files.read_array(path, shape, dtype)


class Replay:
    """What reproduce.py compares a replay with: the report's saved references (read
    through the bounded reader) and the verdict's own tolerances, norm-wise per array;
    one line printed per comparison, and whether any is a MISMATCH."""

    def __init__(self, folder, tolerances, dtype, who):
        self.folder, self.tolerances, self.dtype, self.who = folder, tolerances, dtype, who
        self.mismatch = False

    def compare(self, name, got, saved, shape):
        got = np.asarray(got)
        if got.shape != tuple(shape) or got.dtype != np_dtype(self.dtype):
            self.mismatch = True
            print(f"{name}: shape {got.shape} and dtype {got.dtype}, expected {tuple(shape)} "
                  f"and {self.dtype}  MISMATCH")
            return
        want = expected(self.folder, saved, shape)
        if want is None or name not in self.tolerances:
            print(f"{name}: no saved reference or tolerance")
            return
        err = float(np.sqrt(np.sum(np.square(np.asarray(got, np.float64) - want))))
        ok = err <= self.tolerances[name]
        self.mismatch |= not ok
        print(f"{name}: |{self.who} - reference| = {err:.3g}, tolerance "
              f"{self.tolerances[name]:.3g}{'' if ok else '  MISMATCH'}")

    def verdict(self):
        """The last line; a MISMATCH exits with status 1, so that a script can tell."""
        if self.mismatch:
            print("MISMATCH")
            raise SystemExit(1)
        print("agrees with the saved references, within the verdict's tolerances")


def _literal(tolerances):
    """The tolerances as Python, one per line."""
    return "{" + "".join(f"\n    {k!r}: {v!r}," for k, v in tolerances.items()) + "\n}"


def _reproducer(case, tolerances, spec="mflow"):
    if spec != "mflow":
        return _engine_reproducer(case, tolerances, spec)
    half = "import ml_dtypes  # bfloat16\n" if case.program.dtype == "bfloat16" else ""
    return f'''"""Replays one saved failure with numpy and mflow only: run it from this folder.
Every file is read through mflow's bounded loader (mflow.reports.regressions.load)."""
import pathlib

{half}import numpy as np
from mflow.reports.regressions import Replay, expected, load

import mflow

here = pathlib.Path(__file__).resolve().parent
case, _ = load(here)
inputs, cotangent = case.inputs, case.cotangent
# the verdict's own tolerances, norm-wise per array (oracles/tolerance.py)
tolerances = {_literal(tolerances)}
replay = Replay(here, tolerances, case.program.dtype, "mflow")

{case.program.to_python(imports=False)}
output.backward(cotangent)
leaves = [{", ".join(f"x{i}" for i in range(len(case.inputs)))}]
replay.compare("forward", output.value, "expected_forward", output.shape)
for i, leaf in enumerate(leaves):
    got = np.zeros_like(leaf.value) if leaf.grad is None else leaf.grad
    replay.compare(f"gradient of x{{i}}", got, f"expected_grad_x{{i}}", leaf.shape)
tangents = [expected(here, f"tangent_x{{i}}", x.shape, x.dtype) for i, x in enumerate(inputs)]
if tangents[0] is not None:  # forward mode and second order, where checked
    replay.compare("tangent", mflow.jvp(output, leaves, tangents), "expected_jvp", output.shape)
    for i, h in enumerate(mflow.hvp(output, leaves, cotangent, tangents)):
        replay.compare(f"hvp of x{{i}}", h, f"expected_hvp_x{{i}}", leaves[i].shape)
replay.verdict()
'''


def _session_reproducer(spec):
    return f'''"""Replays a saved engine session: its calls (calls.json) made again in order on
the engine it was found on (through its adapter, {spec}), each answer checked against
the references computed afresh (the suite's checker: needs mflow with torch and JAX).
Prints the calls as code, then MISMATCH (exit status 1) at the first call whose
answer disagrees. Run it from this folder; every file is read through mflow's
bounded loader (mflow.reports.regressions.load_calls)."""
import pathlib

from mflow.reports.sequence import reproduce

reproduce(pathlib.Path(__file__).resolve().parent, {spec!r})
'''


def _engine_reproducer(case, tolerances, spec):
    """reproduce.py for a report made on another engine: rebuilds that engine from its
    adapter's spec (the one named on the command line when the report was saved) and
    replays the program on it through the protocol."""
    return f'''"""Replays one saved failure on the engine it was found on, through its
adapter ({spec}); needs numpy, mflow (the suite) and that engine. Run it from this folder.
Every file is read through mflow's bounded loader (mflow.reports.regressions.load)."""
import pathlib
import traceback

from mflow.oracles.engine import load_engine, normalise
from mflow.reports.regressions import Replay, expected, load

here = pathlib.Path(__file__).resolve().parent
# the engine first: its adapter brings the operations of its own that the program may use
engine = normalise(load_engine({spec!r}))
case, _ = load(here)
program, inputs, cotangent = case.program, case.inputs, case.cotangent
# the verdict's own tolerances, norm-wise per array (oracles/tolerance.py)
tolerances = {_literal(tolerances)}
replay = Replay(here, tolerances, program.dtype, "engine")
for k, step in enumerate(program.steps):  # value k + number of inputs
    print(f"v{{k + len(program.inputs)}} = {{step.op}}({{', '.join(f'v{{a}}' for a in step.args)}})"
          f" {{step.attrs or ''}}")
try:
    result = engine.vjp(program, [x.copy() for x in inputs], cotangent.copy())
except BaseException:  # noqa: BLE001 - the crash is the finding
    traceback.print_exc()
    raise SystemExit("MISMATCH: the engine raised") from None
replay.compare("forward", result.forward, "expected_forward", program.output_shape)
if len(result.grads) != len(inputs):
    replay.mismatch = True
    print(f"{{len(result.grads)}} gradients for {{len(inputs)}} inputs  MISMATCH")
for i, g in enumerate(result.grads[:len(inputs)]):
    replay.compare(f"gradient of x{{i}}", g, f"expected_grad_x{{i}}", program.inputs[i])
tangents = [expected(here, f"tangent_x{{i}}", x.shape, x.dtype) for i, x in enumerate(inputs)]
if tangents[0] is not None:  # forward mode and second order, where checked
    if engine.offers["jvp"] and expected(here, "expected_jvp", program.output_shape) is not None:
        _, got = engine.jvp(program, [x.copy() for x in inputs], [t.copy() for t in tangents])
        replay.compare("tangent", got, "expected_jvp", program.output_shape)
    if engine.offers["hvp"] and expected(here, "expected_hvp_x0", program.inputs[0]) is not None:
        got = engine.hvp(program, [x.copy() for x in inputs], cotangent.copy(),
                         [t.copy() for t in tangents])
        for i, h in enumerate(got):
            replay.compare(f"hvp of x{{i}}", h, f"expected_hvp_x{{i}}", program.inputs[i])
replay.verdict()
'''
