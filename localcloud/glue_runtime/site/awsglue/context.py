"""GlueContext for local runs: the Spark session a script works with, and Glue's logger.

On AWS, GlueContext wraps the SparkContext with Glue's JVM extensions (catalog sources and sinks,
DynamicFrames). Locally there are none: scripts that use `glue_context.spark_session` and plain
Spark DataFrame I/O run the same on both; create_dynamic_frame / write_dynamic_frame do not exist.
"""

from __future__ import annotations

import logging
import sys

from pyspark.context import SparkContext
from pyspark.sql import SparkSession


class GlueLogger:
    """Glue's driver logger (info / warn / error), written to the run's error log as on AWS."""

    def __init__(self, name: str = "awsglue") -> None:
        self._logger = logging.getLogger(name)
        if not self._logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            self._logger.addHandler(handler)
            self._logger.setLevel(logging.INFO)
            self._logger.propagate = False

    def info(self, message: str) -> None:
        self._logger.info(message)

    def warn(self, message: str) -> None:
        self._logger.warning(message)

    def error(self, message: str) -> None:
        self._logger.error(message)


class GlueContext:
    """What a DataFrame-based Glue script needs from GlueContext: spark_session and get_logger()."""

    def __init__(self, sparkContext: SparkContext, **options: object) -> None:
        self._sc = sparkContext
        self._options = options
        self.spark_session: SparkSession = SparkSession.builder.getOrCreate()

    @property
    def sparkSession(self) -> SparkSession:
        return self.spark_session

    def get_logger(self) -> GlueLogger:
        return GlueLogger()
