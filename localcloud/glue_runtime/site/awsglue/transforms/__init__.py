"""Glue's transforms package: empty locally, so that the boilerplate `from awsglue.transforms import *` imports.

DynamicFrame transforms (ApplyMapping, ResolveChoice, ...) are not emulated: write transforms as
Spark DataFrame functions, which run the same on AWS and locally.
"""
