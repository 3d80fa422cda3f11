"""Smoke tests of the benchmarks in ``bench/``: short runs against real servers, so the scripts cannot rot."""
