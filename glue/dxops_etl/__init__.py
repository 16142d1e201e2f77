"""dxops ETL transforms: raw clinical records and device readings -> the curated training table.

Plain functions on Spark DataFrames (no awsglue import): glue/etl_job.py is the thin Glue entry
point, tests/glue runs the same functions in a local Spark session. Python 3.11 (Glue 5.0).
"""

CURATED_SCHEMA_VERSION = "1.0"
