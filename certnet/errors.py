"""The few certnet-specific exceptions.

Bad arguments raise the built-in ``ValueError`` / ``TypeError`` with a message that says what was
wrong and what to do. The classes here are for situations a caller may want to catch by type.
"""

from __future__ import annotations

__all__ = [
    "CertnetError",
    "ModelFormatError",
    "CertificateError",
    "SolverError",
    "ProblemTooLargeError",
    "BoundError",
    "UnsupportedOperation",
    "EquilibriumError",
]


class CertnetError(Exception):
    """Base class of every certnet-specific error."""


class ModelFormatError(CertnetError, ValueError):
    """A file is not a certnet model, is corrupted, or holds invalid weights."""


class CertificateError(CertnetError, ValueError):
    """A certificate does not re-verify, was made for other weights, or is malformed."""


class SolverError(CertnetError, RuntimeError):
    """A numerical solver failed in a way that leaves nothing to certify."""


class ProblemTooLargeError(CertnetError, MemoryError):
    """A problem was refused before solving because it would exceed the memory budget."""


class BoundError(CertificateError):
    """A quantity has no finite bound on the region (a division by an interval holding 0, the
    logarithm of a negative number, an overflow); the message names the operation."""


class UnsupportedOperation(CertnetError, TypeError):
    """Plant or observation code applies an operation certnet cannot bound; the message names
    it."""


class EquilibriumError(CertnetError, ValueError):
    """No (isolated) closed-loop equilibrium at the point given; the message says what was found
    instead and what to do."""
