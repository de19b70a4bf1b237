"""Pre-flight checks: will a job fit in the memory and disk this machine has?

A request such as ``--angles 100000000`` or ``data generate --n 1e12`` used to run until the
kernel killed it (8.2 GB) or the disk filled up (966 MB of ``.partial`` in 300 s).  The verbs
now estimate what a job needs from the sizes asked for, before any work, and refuse with the
estimate and the amount available unless the user insists (``--force``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

__all__ = ["ResourceError", "available_memory_bytes", "free_disk_bytes", "check_fits",
           "format_bytes"]


class ResourceError(OSError):
    """A job would need more memory or disk than there is (the message names both)."""


def available_memory_bytes() -> Optional[int]:
    """Memory available to new allocations without swapping (``MemAvailable`` of
    ``/proc/meminfo``, or the cgroup limit minus usage when lower), or None where unknown."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found and hasattr(os, "sysconf"):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return min(found) if found else None


def free_disk_bytes(path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human figure: ``"8.2 GB"``, ``"966 MB"``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def check_fits(what: str, need: float, have: Optional[float], where: str,
               force: bool = False, force_flag: str = "--force") -> None:
    """Raise :class:`ResourceError` when ``need`` bytes exceed ``have`` (``where``: "memory"
    or "disk at /path"), unless ``force``; a None ``have`` (unknown) passes."""
    if force or have is None or need <= have:
        return
    raise ResourceError(f"{what} needs about {format_bytes(need)} of {where}, "
                        f"{format_bytes(have)} available; ask for less, or pass {force_flag} to "
                        f"try anyway")
