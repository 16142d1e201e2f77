"""Benchmarks behind `make bench`. Each writes artifacts/bench/<name>.json in one format:
{"benchmark": NAME, "metrics": {...}, "baseline": {...}, "ratio": {...}}."""
