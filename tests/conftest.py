"""Shared fixtures. Integration tests run the real handlers on the local cloud built from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.cloud import LocalCloud


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    """A fresh local cloud (moto, in-process) with template.yaml deployed; about a second to start."""
    with LocalCloud.start() as local_cloud:
        yield local_cloud
