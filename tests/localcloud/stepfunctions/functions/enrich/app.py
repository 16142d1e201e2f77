"""Test function: passes its input through with a mark, so a test sees that a real handler ran."""

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "id" not in event:
        raise KeyError("id")  # a plain-ARN Lambda task's Catch matches the errorType
    return {**event, "enriched_by": context.function_name}
