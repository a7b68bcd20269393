"""Scripts that run inside the target interpreter, started from a folder of their own.

Run straight from ``sage_tasks/``, a script would put this package's folder first on
``sys.path`` and our module names (``build``, ``probe``...) would shadow the target's own
packages. So each script is copied once into ``<cache>/scripts/<hash>/`` and run from there.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "target"
SCRIPTS = {"target_facts": HERE / "facts.py", "kernel_check": HERE / "kernel_check.py"}


def path(name: str, cache_dir: Path) -> Path:
    source = SCRIPTS[name]
    data = source.read_bytes()
    folder = cache_dir / "scripts" / hashlib.sha256(data).hexdigest()[:16]
    target = folder / source.name
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{source.name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        tmp.replace(target)
    return target
