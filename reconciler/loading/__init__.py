"""Discover, parse and validate job files into the desired state (DESIGN.md §2)."""

from reconciler.loading.discovery import EXTENSIONS, Source, discover, format_of
from reconciler.loading.loader import LoadedJob, LoadResult, load_blobs, load_paths, load_text

__all__ = [
    "EXTENSIONS",
    "LoadResult",
    "LoadedJob",
    "Source",
    "discover",
    "format_of",
    "load_blobs",
    "load_paths",
    "load_text",
]
