"""A thin Glue entry point: raw CSV or NDJSON -> deduplicated Parquet partitioned by dataset version."""

import sys

from awsglue.context import GlueContext
from awsglue.job import Job
from awsglue.utils import getResolvedOptions
from pyspark.context import SparkContext
from pyspark.sql import functions as F

args = getResolvedOptions(sys.argv, ["JOB_NAME", "input", "input_format", "output", "dataset_version"])
glue_context = GlueContext(SparkContext.getOrCreate())
spark = glue_context.spark_session
job = Job(glue_context)
job.init(args["JOB_NAME"], args)

if args["input_format"] == "csv":
    raw = spark.read.option("header", True).csv(args["input"])
else:
    raw = spark.read.json(args["input"])
curated = (
    raw.dropDuplicates(["record_id"])
    .withColumn("value", F.col("value").cast("double"))
    .withColumn("dataset_version", F.lit(args["dataset_version"]))
)
curated.write.mode("overwrite").partitionBy("dataset_version").parquet(args["output"])
job.commit()
