"""The project's own load benchmark: a fake upstream, a bare reference proxy, a load driver and the report.

Run it with `python -m bench.chat` (see bench/README.md).
"""
