"""Glue entry point of the GDPR erasure in the curated bucket (dxops_etl.erasure).

Arguments: --curated_path (the curated bucket's root: datasets/ and quarantine/), --request_id.
The patient's pseudonym is read from <curated_path>/erasure-requests/<request_id>/request.json
(not passed as an argument: job arguments are visible in the console and CloudTrail); the list of
rewritten datasets is written to .../result.json for the state machine's completion step. Logs
counts only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from awsglue.context import GlueContext
from awsglue.job import Job
from awsglue.utils import getResolvedOptions
from dxops_etl.erasure import erase_everywhere
from dxops_etl.io import join_uri, read_text, write_json
from pyspark.context import SparkContext

REQUIRED = ["JOB_NAME", "curated_path", "request_id"]


def main(argv: Sequence[str]) -> None:
    args = getResolvedOptions(list(argv), REQUIRED)
    glue_context = GlueContext(SparkContext.getOrCreate())
    spark = glue_context.spark_session
    # Partition values stay strings (a site id that looks like a number must not change type).
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    job = Job(glue_context)
    job.init(args["JOB_NAME"], args)
    request_root = join_uri(args["curated_path"], "erasure-requests", args["request_id"])
    pseudonym = str(json.loads(read_text(join_uri(request_root, "request.json")))["patient_pseudonym"])
    changes = erase_everywhere(spark, args["curated_path"], pseudonym, args["request_id"])
    write_json(join_uri(request_root, "result.json"), changes)
    glue_context.get_logger().info(
        f"erasure {args['request_id']}: {len(changes)} datasets rewritten, "
        f"{sum(c['rows_removed'] for c in changes)} rows removed"
    )
    job.commit()


if __name__ == "__main__":
    main(sys.argv)
