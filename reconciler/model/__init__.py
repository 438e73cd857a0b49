"""The job template model (SPEC.md §1): pydantic models, legacy upgrade, canonical form. Pure."""

from reconciler.model.canonical import canonical, canonical_json, execution_hash, spec_hash
from reconciler.model.job import JobTemplate
from reconciler.model.validating import Finding, Validated, format_loc, validate_document

__all__ = [
    "Finding",
    "JobTemplate",
    "Validated",
    "canonical",
    "canonical_json",
    "execution_hash",
    "format_loc",
    "spec_hash",
    "validate_document",
]
