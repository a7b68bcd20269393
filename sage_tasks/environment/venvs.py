"""Fresh virtual environments for builds and smoke tests.

``reuse_from`` makes the packages of another interpreter visible (a ``.pth`` file listing its
site-packages) while installs still go into the new venv: GPU images ship a multi-GB torch
that a fresh venv should use rather than download again.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core import runner
from ..core.errors import EnvironmentProblem

_SITE_DIRS = (
    "import json, site, sysconfig; print(json.dumps([*site.getsitepackages(), sysconfig.get_paths()['purelib']]))"
)


def python_in(venv: Path) -> Path:
    return venv / "bin" / "python"


def link_site(target: str, reuse_from: str) -> Path:
    """Make ``reuse_from``'s site-packages visible to ``target`` (after its own); returns the .pth."""
    dirs = json.loads(runner.run([reuse_from, "-c", _SITE_DIRS], echo=False, error=EnvironmentProblem).stdout)
    own = json.loads(runner.run([target, "-c", _SITE_DIRS], echo=False, error=EnvironmentProblem).stdout)
    lines = [d for d in dict.fromkeys(dirs) if Path(d).is_dir() and d not in own]
    pth = Path(own[0]) / "_sage_tasks_reuse.pth"
    pth.write_text("\n".join(lines) + "\n")
    return pth


def create(path: Path, python: str, *, reuse_from: str | None = None) -> Path:
    """Create ``path`` as a venv of ``python``; returns its interpreter."""
    runner.run(
        [python, "-m", "venv", str(path)], error=EnvironmentProblem, hint=f"check that {python} has the venv module"
    )
    target = python_in(path)
    if reuse_from:
        link_site(str(target), reuse_from)
    return target
