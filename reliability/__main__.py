"""python -m reliability fuzz|chaos [options]: see each module's help."""

from __future__ import annotations

import importlib
import sys

RUNS = ("fuzz", "chaos")


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in RUNS:
        print(f"usage: python -m reliability {{{'|'.join(RUNS)}}} [options]", file=sys.stderr)
        return 2
    run: int = importlib.import_module(f"reliability.{sys.argv[1]}").main(sys.argv[2:])
    return run


if __name__ == "__main__":
    sys.exit(main())
