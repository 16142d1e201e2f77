"""Run every benchmark: python -m bench [name ...]."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["ingest", "localcloud", "simulator", "etl", "model", "serving", "drift"]


def main() -> None:
    names = sys.argv[1:] or BENCHMARKS
    for name in names:
        print(f"== benchmark {name}", file=sys.stderr)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
