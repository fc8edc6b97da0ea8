"""What a check leaves behind, and the tools that use it: the pytest plugin
(`plugin.py`, with the tests it ships), the reducer, regression reports, campaign
records, the summary and the comparison report, and the command (`__main__.py`).
Every file of a corpus or a campaign is read and written through `files.py`.
"""

from .files import atomic_write

__all__ = ["atomic_write"]
