"""Evidence of step attempts: the zip of one attempt, and the stores that keep them.

`FileEvidenceStore` (a folder, the default) and `S3EvidenceStore` implement `ports.EvidenceStore`.
"""

from reconciler.evidence.filesystem import BadEvidenceKey, FileEvidenceStore, check_key
from reconciler.evidence.s3 import S3EvidenceStore
from reconciler.evidence.zipping import FILES_LIMIT, LeftFiles, build_zip, collect_files

__all__ = [
    "FILES_LIMIT",
    "BadEvidenceKey",
    "FileEvidenceStore",
    "LeftFiles",
    "S3EvidenceStore",
    "build_zip",
    "check_key",
    "collect_files",
]
