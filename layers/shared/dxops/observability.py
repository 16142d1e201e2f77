"""One Logger, Tracer and Metrics for every function (service name from POWERTOOLS_SERVICE_NAME).

Privacy rule for everything that logs: log counts, ids of our own making (record ids, pseudonyms,
object keys) and error types, never a patient identifier, name, date of birth, free text, or a
request body; validation errors are logged without their input values. As a second line of
defence, a filter erases (Powertools data masking) any field of a log record whose name says it
could carry PHI, should one ever be passed to the logger.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.data_masking import DataMasking

from dxops.vocab.identifiers import DIRECT_IDENTIFIER_KEYS, FREE_TEXT_KEYS

PHI_FIELD_NAMES = frozenset({"patient_id", "body", "event", "payload", *DIRECT_IDENTIFIER_KEYS, *FREE_TEXT_KEYS})
_masking = DataMasking(raise_on_missing_field=False)


# Attributes every LogRecord has (its logger's "name" among them): only the extras are screened.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class PhiFilter(logging.Filter):
    """Erases PHI-named fields of a log record, at any depth of the structured extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in list(vars(record).items()):
            if name in _STANDARD_ATTRIBUTES:
                continue
            if name in PHI_FIELD_NAMES:
                setattr(record, name, "*****")
            elif isinstance(value, dict):
                setattr(record, name, _erase_nested(value))
        return True


def _erase_nested(value: dict[str, Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # absent fields
        return _masking.erase(value, fields=[f"$..{name}" for name in sorted(PHI_FIELD_NAMES)])


logger = Logger()
logger.addFilter(PhiFilter())
tracer = Tracer()
metrics = Metrics()
