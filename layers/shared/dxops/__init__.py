"""dxops shared domain package: schemas, domain logic and AWS adapters used by every Lambda."""

SCHEMA_VERSION = "1.0"
