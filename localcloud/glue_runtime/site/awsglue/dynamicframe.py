"""DynamicFrame as a thin wrapper of a Spark DataFrame: fromDF / toDF / count only.

Generated Glue scripts import DynamicFrame and convert at their edges; Glue's DynamicFrame
transforms and catalog I/O are not emulated locally.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from .context import GlueContext


class DynamicFrame:
    def __init__(self, frame: DataFrame, glue_ctx: GlueContext, name: str = "") -> None:
        self._frame = frame
        self.glue_ctx = glue_ctx
        self.name = name

    @classmethod
    def fromDF(cls, dataframe: DataFrame, glue_ctx: GlueContext, name: str) -> DynamicFrame:
        return cls(dataframe, glue_ctx, name)

    def toDF(self) -> DataFrame:
        return self._frame

    def count(self) -> int:
        return self._frame.count()
