"""The one way the suite reads and writes the files of a corpus (saved reports) or
a campaign (records): every path that reads or writes one goes through here.

Reading: regular files only, never through a symbolic link (O_NOFOLLOW), opened
without blocking (a FIFO is refused, not waited on), its size checked before a
byte is read, and never more than the limit the caller names. What fails is a
`ReportError` naming the file and what is wrong, one line, so that one damaged
or hostile file is one line in a listing and never a hang, a traceback or
gigabytes of memory.

Writing: whole or not at all (a temporary file renamed into place), and only
into folders that are what they claim to be: a folder the suite writes into
(`seen/`, `archive/`, `history/`, `.inflight/`) that is a link elsewhere or not a
folder is refused, so writes stay inside the folders the user chose.
"""

import json
import os
import stat
from pathlib import Path

MAX_JSON_BYTES = 4 << 20     # report.json, program.json (100,000 steps fit), run.json
MAX_STATS_BYTES = 16 << 20   # a stats file: 53 operations x 15 pairs x 66 bins, and room
MAX_ENTRIES = 100_000        # entries read from one folder (seen/ of a report found often)


class ReportError(ValueError):
    """A corpus or campaign file that cannot be used, naming the file and the field."""


class UnsafeFolder(ReportError):
    """A folder the suite would write into is a link elsewhere, or not a folder."""


def read_bytes(path, limit):
    """The bytes of the regular file `path`, at most `limit` of them, not through a
    symlink, never waiting on a FIFO or a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise ReportError(f"{path}: cannot open ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ReportError(f"{path}: not a regular file")
        if info.st_size > limit:
            raise ReportError(f"{path}: {info.st_size:,} bytes, more than the {limit:,} "
                              "this file can need")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)[:limit]
    finally:
        os.close(fd)


def read_json(path, expect=dict, limit=MAX_JSON_BYTES):
    """The JSON value in `path`, of type `expect` (a type or a tuple of types)."""
    try:
        value = json.loads(read_bytes(path, limit).decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        kind = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise ReportError(f"{path}: cannot read it as JSON ({kind})") from None
    if not isinstance(value, expect):
        names = " or ".join(t.__name__ for t in (expect if isinstance(expect, tuple)
                                                  else (expect,)))
        raise ReportError(f"{path}: expected a JSON {names}, found {type(value).__name__}")
    return value


def read_array(path, shape, dtype):
    """The .npy array in `path`, which must have this shape and dtype: the header is
    checked before the data is allocated; never unpickled."""
    import io

    import numpy as np
    from mflow.oracles.program import np_dtype
    dtype = np_dtype(dtype) if isinstance(dtype, str) else np.dtype(dtype)
    cast = dtype if dtype.name == "bfloat16" else None  # stored as float32 (storable)
    want = np.dtype(np.float32) if cast is not None else dtype
    data = read_bytes(path, int(np.prod(shape)) * want.itemsize + 4096)
    try:
        f = io.BytesIO(data)
        version = np.lib.format.read_magic(f)
        header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                  else np.lib.format.read_array_header_2_0)(f)
        found_shape, _, found_dtype = header
        if tuple(found_shape) != tuple(shape) or found_dtype != want:
            raise ReportError(f"{path}: expected shape {tuple(shape)} and dtype {want}, "
                              f"found {tuple(found_shape)} and {found_dtype}")
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except ReportError:
        raise
    except Exception as e:  # noqa: BLE001 - any damage in a .npy file is named, not raised raw
        raise ReportError(f"{path}: cannot load the array ({type(e).__name__}: {e})") from None
    if a.shape != tuple(shape) or a.dtype != want:
        raise ReportError(f"{path}: expected shape {tuple(shape)} and dtype {want}, "
                          f"found {a.shape} and {a.dtype}")
    return a if cast is None else a.astype(cast)


def is_folder(path):
    """Whether `path` is a folder itself, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def folder(path, create=True):
    """`path` as a folder the suite may write into: created if absent (with
    `create`), refused if it is a link or not a folder. Returns the Path."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if not create:
            raise ReportError(f"{path}: no such folder") from None
        path.mkdir(parents=True, exist_ok=True)
        mode = os.lstat(path).st_mode
    if not stat.S_ISDIR(mode):
        what = "a link" if stat.S_ISLNK(mode) else "not a folder"
        raise UnsafeFolder(f"{path}: {what}; the suite writes only into folders of its own")
    return path


def entries(path, pattern="*", limit=MAX_ENTRIES):
    """The names in folder `path` matching `pattern` (sorted), at most `limit`, not
    following a link: [] for a path that is not a folder."""
    import fnmatch
    if not is_folder(path):
        return []
    found = []
    with os.scandir(path) as it:
        for entry in it:
            if fnmatch.fnmatchcase(entry.name, pattern):
                found.append(entry.name)
                if len(found) >= limit:
                    break
    return sorted(found)


def count(path, limit=MAX_ENTRIES):
    """How many entries folder `path` holds (up to `limit`), 0 if it is no folder."""
    return len(entries(path, limit=limit))


def atomic_write(path, data):
    """Write `data` (text or bytes) to `path` whole or not at all: a new temporary file
    (never one that exists, nor through a link) renamed into place, removed if the
    write fails (a full disk, a second Ctrl-C). The rename replaces a link at `path`,
    never writes through it."""
    import uuid
    path = Path(path)
    data = data if isinstance(data, bytes) else data.encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
