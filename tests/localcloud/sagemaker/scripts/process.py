"""Processing script: summarises the CSV files of --input into --output/summary.json.

Container paths come as arguments (the local cloud maps them); with REPORT_BUCKET set it also writes
the summary to S3, as a processing step that calls AWS would (server mode reaches the local cloud).
"""

import argparse
import csv
import json
import os
import sys
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--input", type=Path, required=True)
parser.add_argument("--output", type=Path, required=True)
parser.add_argument("--message", type=Path, required=True)
parser.add_argument("--fail", action="store_true")
args = parser.parse_args()

if args.fail:
    args.message.write_text("the input holds no usable records")
    print("no usable records", file=sys.stderr)
    sys.exit(3)
rows = [row for path in sorted(args.input.rglob("*.csv")) for row in csv.DictReader(path.open())]
summary = {"records": len(rows), "stage": os.environ["DXOPS_STAGE"]}
(args.output / "summary.json").write_text(json.dumps(summary))
(args.output / "nested").mkdir()
(args.output / "nested" / "count.txt").write_text(str(len(rows)))
args.message.write_text(f"summarised {len(rows)} records")
if os.environ.get("REPORT_BUCKET"):
    import boto3

    boto3.client("s3").put_object(
        Bucket=os.environ["REPORT_BUCKET"], Key="reports/summary.json", Body=json.dumps(summary)
    )
print(f"processed {len(rows)} records")
