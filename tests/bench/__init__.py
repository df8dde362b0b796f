"""Smoke test of `make bench` (bench/): the whole benchmark with tiny numbers."""
