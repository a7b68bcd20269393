"""Scripts that run inside the target interpreter, started from a folder of their own.

Run straight from ``sage_tasks/``, a script would put this package's folder first on
``sys.path`` and our module names (``build``, ``probe``...) would shadow the target's own
packages. So each script is copied, with the companion modules it imports from beside itself,
into ``<cache>/scripts/<hash>/`` (one hash over all of them) and run from there.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "target"
# name: (the script, then the modules it imports from its own folder)
SCRIPTS = {
    "target_facts": (HERE / "facts.py",),
    "kernel_check": (HERE / "kernel_check.py", HERE / "gate_metrics.py"),
}


def path(name: str, cache_dir: Path) -> Path:
    files = [(source.name, source.read_bytes()) for source in SCRIPTS[name]]
    digest = hashlib.sha256()
    for file_name, data in files:
        digest.update(f"{file_name}\0{len(data)}\0".encode())
        digest.update(data)
    folder = cache_dir / "scripts" / digest.hexdigest()[:16]
    target = folder / files[0][0]
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for file_name, data in [*files[1:], files[0]]:  # the script last: once it exists, so do its companions
            tmp = folder / f".{file_name}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            tmp.replace(folder / file_name)
    return target
