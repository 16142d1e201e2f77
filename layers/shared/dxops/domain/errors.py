"""Domain errors the handlers map to responses."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: the message is safe to return to a client and to log (it never holds PHI)."""


class PayloadTooLarge(DomainError):
    pass


class MalformedPayload(DomainError):
    pass


class DependencyUnavailable(DomainError):
    """A downstream service (S3, Secrets Manager) failed; the client may retry."""
