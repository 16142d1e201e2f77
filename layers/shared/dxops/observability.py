"""One Logger, Tracer and Metrics for every function (service name from POWERTOOLS_SERVICE_NAME).

Privacy rule for everything that logs: log counts, ids of our own making (record ids, pseudonyms,
object keys) and error types, never a patient identifier, name, date of birth, free text, or a
request body. Validation errors are logged without their input values.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
