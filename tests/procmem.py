"""Peak resident memory of this process's own address space, for the memory-bound tests.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is not that on Linux: a child started by
``subprocess`` (vfork + exec) inherits its parent's high-water mark, so a worker launched
from a pytest process that has grown to 1 GB reports 1 GB before doing anything. VmHWM in
/proc/self/status belongs to the address space exec created, so it counts only the child.
"""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """High-water resident set size of this address space in MiB (VmHWM; ru_maxrss elsewhere)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
