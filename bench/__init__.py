"""The project's own load benchmark: a fake upstream, a bare reference proxy, a load driver and the report.

Run it with `python -m bench.chat` or `python -m bench.images` (see bench/README.md).
"""
