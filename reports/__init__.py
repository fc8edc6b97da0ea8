"""What a check leaves behind, and the tools that use it: the pytest plugin
(`plugin.py`, with the tests it ships), the reducer, regression reports, campaign
records, the summary and the comparison report, and the command (`__main__.py`).
"""
