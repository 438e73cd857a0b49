"""courier's library: everything that is not SQL and not the CLI (DESIGN.md §1)."""

__version__ = "0.1.0"
