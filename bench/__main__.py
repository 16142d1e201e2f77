"""Run every benchmark: python -m bench [name ...], or one with its options:
python -m bench load --clients 50 --requests-per-client 16."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["ingest", "localcloud", "simulator", "etl", "model", "serving", "drift", "load"]


def main() -> None:
    arguments = sys.argv[1:]
    first_option = next((i for i, a in enumerate(arguments) if a.startswith("-")), len(arguments))
    names, options = arguments[:first_option] or BENCHMARKS, arguments[first_option:]
    if options and len(names) != 1:
        raise SystemExit("options are for one benchmark: python -m bench load --clients 50")
    for name in names:
        print(f"== benchmark {name}", file=sys.stderr)
        module = importlib.import_module(f"bench.{name}")
        if options:
            module.main(options)
        else:
            module.main()


if __name__ == "__main__":
    main()
