"""Embedded local cloud: runs dxops's template, handlers and state machines on moto, with no AWS account."""
