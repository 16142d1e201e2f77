"""Test function: fails `fail_times` times per id with ValueError (Retry), or always with
RuntimeError when `fatal` is set (Catch). Attempts are counted in the warm function's memory,
as a real Lambda container would keep them."""

from collections import Counter
from typing import Any

ATTEMPTS: Counter[str] = Counter()


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ATTEMPTS[event["id"]] += 1
    attempt = ATTEMPTS[event["id"]]
    if event.get("fatal"):
        raise RuntimeError(f"cannot process {event['id']}")
    if attempt <= int(event.get("fail_times", 0)):
        raise ValueError(f"attempt {attempt} of {event['id']} failed")
    return {**event, "attempts": attempt}
