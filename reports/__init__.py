"""What a check leaves behind, and the tools that use it: the pytest plugin
(`plugin.py`, with the tests it ships), the reducer, regression reports, campaign
records, the summary and the comparison report, and the command (`__main__.py`).
"""

import os


def atomic_write(path, text):
    """Write `text` to `path` whole or not at all: a temporary file renamed into place,
    removed if the write fails (a full disk, a second Ctrl-C)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
