"""Facts about this machine, named like gohai's (kernel_name, platform, primary_ip, ...).

Not pure: it reads the system. The CLI calls `gather()` once and hands the result to
`inventory.inventory_from_document`, which puts it under what local nodes declare. It is fast
(no subprocess, name lookups under a deadline) and never raises: a fact it cannot learn is left
out, and a filter on a missing attribute matches no node.
"""

from __future__ import annotations

import os
import platform
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

KEYS = (
    "kernel_name",
    "kernel_release",
    "os",
    "platform",
    "platform_version",
    "hostname",
    "fqdn",
    "primary_ip",
    "cpu_count",
    "memory_total_mb",
    "machine",
    "python_version",
)
"""Every fact `gather` tries to learn; the ones it cannot learn are absent."""

_TEST_NET = ("192.0.2.1", 9)  # RFC 5737 documentation address: routable-looking, never answered
_FQDN_DEADLINE = 0.025  # seconds; getfqdn may wait on DNS, and gathering must stay under 50 ms
_OS_RELEASE = (Path("/etc/os-release"), Path("/usr/lib/os-release"))


def gather() -> dict[str, object]:
    """This machine's facts; see `KEYS`."""
    system = _safe(platform.system, "")
    hostname = _safe(socket.gethostname, "")
    release: dict[str, str] = _safe(_os_release, {})
    facts: dict[str, object] = {
        "kernel_name": system,
        "kernel_release": _safe(platform.release, ""),
        "os": system.lower(),
        "platform": _platform_name(system, release),
        "platform_version": _platform_version(system, release),
        "hostname": hostname,
        "fqdn": _with_deadline(socket.getfqdn, hostname, _FQDN_DEADLINE) if hostname else "",
        "primary_ip": _safe(_primary_ip, "127.0.0.1"),
        "cpu_count": _safe(os.cpu_count, None),
        "memory_total_mb": _safe(_memory_total_mb, None),
        "machine": _safe(platform.machine, ""),
        "python_version": _safe(platform.python_version, ""),
    }
    return {k: v for k, v in facts.items() if v not in (None, "")}


def _safe(fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except Exception:  # a fact we cannot learn is left out, never an error
        return default


def _with_deadline(fn: Callable[[], str], default: str, seconds: float) -> str:
    result: list[str] = []

    def run() -> None:
        result.append(_safe(fn, default))

    worker = threading.Thread(target=run, name="courier-gather", daemon=True)
    worker.start()
    worker.join(seconds)
    return result[0] if result else default


def _os_release() -> dict[str, str]:
    for path in _OS_RELEASE:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        fields = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                fields[key.strip()] = value.strip().strip("\"'")
        return fields
    return {}


def _platform_name(system: str, release: dict[str, str]) -> str:
    if system == "Darwin":
        return "mac_os_x"
    if system == "Windows":
        return "windows"
    return release.get("ID", system.lower())


def _platform_version(system: str, release: dict[str, str]) -> str:
    if system == "Darwin":
        return _safe(lambda: platform.mac_ver()[0], "")
    if system == "Windows":
        return _safe(platform.version, "")
    return release.get("VERSION_ID", "")


def _primary_ip() -> str:
    # connect() on a UDP socket only picks the route and source address; nothing is sent.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(_TEST_NET)
            address: str = sock.getsockname()[0]
        except OSError:
            return "127.0.0.1"
    return address if address and address != "0.0.0.0" else "127.0.0.1"  # noqa: S104


def _memory_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size // (1024 * 1024) if pages > 0 and page_size > 0 else None
