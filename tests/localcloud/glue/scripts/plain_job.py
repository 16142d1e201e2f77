"""A Glue job without Spark, so that the runner's tests take well under a second each.

--mode copy: summarise the NDJSON under --input into --output/summary.json, replacing what was
there (like Spark's overwrite); raise: fail after printing a data value; sleep: run until stopped.
"""

import json
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from awsglue.utils import getResolvedOptions

args = getResolvedOptions(sys.argv, ["JOB_NAME", "mode", "input", "output", "label"])


def local_path(uri: str) -> Path:
    return Path(urlparse(uri).path)


if args["mode"] == "sleep":
    print("sleeping")
    time.sleep(600)
if args["mode"] == "raise":
    print("patient P-0042 glucose 31.7 mmol/L")
    raise ValueError("glucose out of range")

rows = [
    json.loads(line)
    for path in sorted(local_path(args["input"]).rglob("*.ndjson"))
    for line in path.read_text().splitlines()
]
output = local_path(args["output"])
shutil.rmtree(output, ignore_errors=True)
output.mkdir(parents=True)
summary = {
    "rows": len(rows),
    "patients": sorted({row["patient"] for row in rows}),
    "label": args["label"],
    "job": args["JOB_NAME"],
    "run": args["JOB_RUN_ID"],
    "input_scheme": urlparse(args["input"]).scheme,
    "temp_dir_scheme": urlparse(args["TempDir"]).scheme,
}
(output / "summary.json").write_text(json.dumps(summary))
print(f"summarised {len(rows)} rows")
