"""Validation: raw police and IOM extracts → standardised records, with nothing lost.

Public entry point: :func:`validate_extracts`. Source definitions (column maps, formats,
code lists, check policies) are loaded by :func:`load_source_definition`; the standardisers
in :mod:`recapture.validation.standardise` can be used on their own. See
``docs/validation.md``.
"""

from recapture.validation.definition import (
    DEFAULT_POLICY,
    SourceDefinition,
    builtin_definitions,
    load_source_definition,
    parse_source_definition,
)
from recapture.validation.reading import read_extract
from recapture.validation.stage import MESSAGES, ValidationResult, validate_extracts

__all__ = [
    "validate_extracts",
    "ValidationResult",
    "SourceDefinition",
    "load_source_definition",
    "parse_source_definition",
    "builtin_definitions",
    "read_extract",
    "DEFAULT_POLICY",
    "MESSAGES",
]
