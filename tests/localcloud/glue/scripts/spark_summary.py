"""Reads curated Parquet back (from S3 through the runner's mirror) and writes a JSON summary object."""

import json
import sys
from pathlib import Path
from urllib.parse import urlparse

import boto3
from awsglue.context import GlueContext
from awsglue.job import Job
from awsglue.utils import getResolvedOptions
from pyspark.context import SparkContext

args = getResolvedOptions(sys.argv, ["JOB_NAME", "curated", "summary", "bucket"])
glue_context = GlueContext(SparkContext.getOrCreate())
job = Job(glue_context)
job.init(args["JOB_NAME"], args)

curated = glue_context.spark_session.read.parquet(args["curated"])
versions = sorted(row["dataset_version"] for row in curated.select("dataset_version").distinct().collect())
# The script's own AWS calls reach the local cloud in server mode.
buckets = [bucket["Name"] for bucket in boto3.client("s3").list_buckets()["Buckets"]]
summary = {
    "rows": curated.count(),
    "columns": sorted(curated.columns),
    "total_value": sum(row["value"] for row in curated.select("value").collect()),
    "versions": versions,
    "sees_bucket": args["bucket"] in buckets,
}
Path(urlparse(args["summary"]).path).write_text(json.dumps(summary))
job.commit()
