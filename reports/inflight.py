"""A case in flight: an engine that kills its process still leaves a finding, and
nothing else can forge one.

Each process that checks cases keeps the case it is checking on disk, in
DIR/.inflight/<worker>-<pid>-<token>.case, overwritten in place per case (~20 µs)
and locked (flock) for the life of the process: the kernel releases the lock
when the process dies, however it dies, so an unlocked file is one its writer
left behind, and a locked one belongs to a live run (a gate started beside a
running campaign leaves it alone). The file names the engine it was written for.

`recover` saves such a case only when all of this holds: a run of the same engine
finds it (a gate on mflow never takes another adapter's crash for mflow's), its
writer is dead (unlocked), and the case kills a fresh process again when replayed
there (`python -m mflow.reports.inflight`): a SIGKILL from outside, a user's
`kill -9` or the machine running out of memory, is not the engine's fault unless it
happens again. A case that replays without dying is dropped, and said so.
"""

import fcntl
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np

from . import files
from .files import ReportError

FOLDER = ".inflight"
MAX_CASE_BYTES = 64 << 20  # a program of 5,000 steps and inputs of side 256 fit
REPLAY_SECONDS = 600       # a replay that gives no answer in this long counts as dying
FINISHED = "mflow-inflight-replay: finished"


class InFlight:
    """This process's case in flight, in DIR/.inflight, for the engine `spec`."""

    def __init__(self, directory, spec):
        self.directory, self.spec = Path(directory), spec or "mflow"
        self.file = self.path = None

    def write(self, case, modes=("vjp",)):
        """Put `case` on disk before the engine runs it: one line of JSON (the engine,
        the process, the modes, the program, each array's shape and dtype), then the
        arrays' bytes, flushed to the kernel, which keeps it when the process dies."""
        if self.file is None:
            self._open()
        arrays = [np.ascontiguousarray(a) for a in (*case.inputs, case.cotangent)]
        head = json.dumps({"engine": self.spec, "pid": os.getpid(), "modes": list(modes),
                           "program": case.program.to_json(),
                           "arrays": [[list(a.shape), a.dtype.name] for a in arrays]})
        self.file.seek(0)
        self.file.write(head.encode() + b"\n" + b"".join(a.tobytes() for a in arrays))
        self.file.truncate()
        self.file.flush()

    def _open(self):
        """A new file, locked before it takes its name: a recovery never sees it unlocked."""
        folder = files.folder(self.directory / FOLDER)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"{worker}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        self.file = os.fdopen(fd, "r+b")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        self.path = folder / f"{name}.case"
        os.rename(tmp, self.path)

    def close(self):
        """The process finished: nothing is in flight any more."""
        if self.file is None:
            return
        try:
            self.path.unlink(missing_ok=True)
            self.file.close()
        except OSError:  # a full disk: what is buffered cannot go out, nor is needed
            pass
        try:
            self.path.parent.rmdir()  # the last process to finish removes the folder
        except OSError:
            pass
        self.file = self.path = None


def read(data):
    """(Case, header) from a case file's bytes; ReportError if it is damaged or half-written."""
    from mflow.oracles.program import DTYPES, Case, Program, ProgramError, np_dtype
    head, _, body = data.partition(b"\n")
    try:
        meta = json.loads(head)
        program = Program.from_json(meta["program"])
        shapes = [(tuple(int(n) for n in shape), np_dtype(dtype))
                  for shape, dtype in meta["arrays"]]
        if any(d.name not in DTYPES for _, d in shapes):
            raise ValueError(f"arrays of {[d.name for _, d in shapes]}; the suite's: {DTYPES}")
        modes = tuple(str(m) for m in meta.get("modes", ("vjp",)))
        engine = str(meta["engine"])
    except (ValueError, TypeError, KeyError, RecursionError, ProgramError) as e:
        raise ReportError(f"a damaged case in flight ({type(e).__name__}: {e})") from None
    if len(shapes) != len(program.inputs) + 1 or any(d.kind != "f" for _, d in shapes):
        raise ReportError("a damaged case in flight (its arrays do not fit its program)")
    arrays, offset = [], 0
    for shape, dtype in shapes:
        n = int(np.prod(shape)) * dtype.itemsize
        if offset + n > len(body):
            raise ReportError("a half-written case in flight")
        arrays.append(np.frombuffer(body[offset:offset + n], dtype).reshape(shape).copy())
        offset += n
    if offset != len(body):
        raise ReportError("a half-written case in flight")
    return Case(program, tuple(arrays[:-1]), arrays[-1]), {"engine": engine, "modes": modes}


def recover(directory, spec, record=None, worker=None, replay=None):
    """Every case a dead run of the engine `spec` left in DIR/.inflight (only worker
    `worker`'s, if named), replayed in a fresh process and saved as an EngineCrash
    report if it kills that process too; `record`: the engine's record for the report
    (oracles.engine.engine_record). Returns one line per case met, saying what became
    of it."""
    from .regressions import same_engine
    folder = Path(directory) / FOLDER
    replay = replay or replay_in_fresh_process
    said = []
    for name in files.entries(folder, "*.case"):
        if worker is not None and not name.startswith(f"{worker}-"):
            continue
        path = folder / name
        claimed = _claim(path)
        if claimed is None:
            continue  # a live run's, or gone: not ours to touch
        try:
            try:
                case, meta = read(files.read_bytes(path, MAX_CASE_BYTES))
            except ReportError as e:
                path.unlink(missing_ok=True)
                said.append(f"{path}: {e}; removed")
                continue
            if not same_engine(meta["engine"], spec):
                said.append(f"{path}: left by a run of {meta['engine']}, not of {spec}; kept "
                            "for a run of that engine")
                continue
            died = replay(path, spec)
            if died is None:
                path.unlink(missing_ok=True)
                said.append(f"a run of {spec} died while checking a case; replayed in a fresh "
                            "process, it did not die again: not the engine's doing (stopped "
                            "from outside), not saved")
                continue
            saved = _save(case, meta, died, directory, spec, record)
            path.unlink(missing_ok=True)
            said.append(f"a run of {spec} died while checking a case, and the case kills a "
                        f"fresh process too ({died}): saved as {saved}")
        finally:
            claimed.close()
    try:
        folder.rmdir()
    except OSError:
        pass
    return said


def _claim(path):
    """The case file, opened and locked for this recovery; None while its writer lives
    (or another recovery holds it), or if it is not a regular file."""
    import stat
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a FIFO, a device: not a case
        os.close(fd)
        return None
    f = os.fdopen(fd, "rb")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def _save(case, meta, died, directory, spec, record):
    from mflow.oracles.verdict import EngineCrash, Verdict

    from .regressions import save
    verdict = Verdict(case, (record or {}).get("engine_name") or spec)
    verdict.modes = meta["modes"]
    verdict.errors["engine"] = f"ProcessDied: {died}"
    crash = EngineCrash(f"the engine's process died while checking this case, and dies again "
                        f"when it is replayed in a fresh one ({died})\n{verdict.describe()}",
                        verdict)
    extra = {"engine_spec": spec, "engine_version": ""}
    extra.update({k: v for k, v in (record or {}).items() if k in extra})
    return save(crash, directory=directory, extra=extra)


def replay_in_fresh_process(path, spec):
    """Check the case in `path` on engine `spec` in a new Python process: None if that
    process finished, else how it died."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        run = subprocess.run([sys.executable, "-m", "mflow.reports.inflight", str(path), spec],
                             capture_output=True, text=True, timeout=REPLAY_SECONDS, env=env)
    except subprocess.TimeoutExpired:
        return f"no answer in {REPLAY_SECONDS} s"
    if FINISHED in run.stdout:
        return None
    if run.returncode < 0:
        import signal
        try:
            return f"killed by {signal.Signals(-run.returncode).name}"
        except ValueError:
            return f"killed by signal {-run.returncode}"
    return f"exit status {run.returncode} before the check ended"


def _replay_main(path, spec):
    """The fresh process: check the case as the run did, then say it finished."""
    from mflow.oracles.checker import Checker
    from mflow.oracles.engine import load_engine
    case, meta = read(files.read_bytes(path, MAX_CASE_BYTES))
    verdict = Checker(load_engine(spec)).judge(case, meta["modes"])
    outcome = type(verdict.outcome).__name__ if verdict.outcome else "passed"
    print(f"{FINISHED} ({outcome})", flush=True)


if __name__ == "__main__":
    _replay_main(sys.argv[1], sys.argv[2])
