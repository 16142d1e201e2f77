"""A local stand-in for AWS Glue's `awsglue` library, which is not on PyPI.

The local cloud (localcloud/glue.py) puts this folder on the PYTHONPATH of a job run, so that Glue
scripts import what they import on AWS. It covers what scripts built on plain Spark DataFrames
use: getResolvedOptions (awsglue.utils), GlueContext.spark_session (awsglue.context), Job
init/commit (awsglue.job) and DynamicFrame.fromDF/toDF (awsglue.dynamicframe). Job bookmarks,
catalog sources/sinks and DynamicFrame transforms are not emulated.
"""
