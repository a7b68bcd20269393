"""The source of a build: a verified git checkout at the pinned commit, a local directory or a
tarball, synced by content into a persistent work tree so a re-run reuses finished objects.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...core import atomic, runner
from ...core.errors import BuildError, ConfigError, IntegrityError
from ...core.recipe import Recipe
from ...core.settings import Settings
from .plan import BuildPlan

log = logging.getLogger(__name__)


# Folders a build writes into its source tree: kept between runs, never copied from a source.
BUILD_OUTPUTS = ("build", "dist", ".eggs")


SKIP_COPY = (".git", "__pycache__", *BUILD_OUTPUTS)


def source_suffix(recipe: Recipe, source: Mapping[str, Any], tree: Path) -> str:
    """What the label must add when the source is not the recipe's pinned, clean commit:
    ``.g<commit>`` for another commit, ``.s<content hash>`` for an unversioned or modified tree."""
    commit = source.get("commit")
    if commit and commit == recipe.source.commit and not source.get("dirty"):
        return ""
    if commit and not source.get("dirty"):
        return f".g{commit[:7]}"
    digest = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and not _skipped(p.relative_to(tree))):
        digest.update(str(path.relative_to(tree)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return f".s{digest.hexdigest()[:7]}"


def _git(args: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    done = runner.run(
        ["git", *args], cwd=cwd, env=env, error=BuildError, hint="check the repository URL and your network"
    )
    return done.stdout.strip()


def _head(path: Path) -> str | None:
    if not (path / ".git").exists():
        return None
    done = runner.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=False, echo=False)
    return done.stdout.strip() if done.returncode == 0 else None


def clone_verified(repo: str, ref: str | None, commit: str | None, dest: Path, env: Mapping[str, str]) -> str:
    """Clone ``ref`` of ``repo`` into ``dest``; the commit it resolves to must be ``commit``.

    Without a ref (or with the commit as ref) the commit itself is fetched: nothing can move.
    """
    quiet = {**env, "GIT_TERMINAL_PROMPT": "0"}
    if commit and ref in (None, commit):
        dest.mkdir(parents=True)
        _git(["init", "-q", str(dest)], env=quiet)
        _git(["-C", str(dest), "fetch", "-q", "--depth", "1", repo, commit], env=quiet)
        _git(
            ["-C", str(dest), "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", "FETCH_HEAD"], env=quiet
        )
    elif ref:
        _git(["-c", "advice.detachedHead=false", "clone", "--depth", "1", "--branch", ref, repo, str(dest)], env=quiet)
    else:
        raise ConfigError(f"no ref and no commit to fetch from {repo}", "set [source] ref or commit in the recipe")
    got = _head(dest) or ""
    if commit and got != commit:
        shutil.rmtree(dest, ignore_errors=True)
        raise IntegrityError(
            f"{ref} of {repo} is now commit {got}, but the recipe pins {commit}: the ref moved",
            "check upstream; if the new commit is wanted, update the recipe's commit",
        )
    return got


def checkout(plan: BuildPlan, env: Mapping[str, str]) -> str:
    """A verified clone of the pinned ref in ``src_dir`` (reused when already at the commit)."""
    current = _head(plan.src_dir)
    if current and plan.commit and current == plan.commit:
        log.info("reusing checkout %s at %s", plan.src_dir, current[:12])
        return current
    fresh = plan.work_dir / "src.new"
    shutil.rmtree(fresh, ignore_errors=True)
    got = clone_verified(plan.source, plan.ref, plan.commit, fresh, env)
    if plan.src_dir.exists():
        shutil.rmtree(plan.src_dir)  # build outputs of other sources must not leak into this one
    fresh.rename(plan.src_dir)
    return got


def export_source(settings: Settings, dest: Path) -> str:
    """Clone the recipe's pinned ref into ``dest`` and verify its commit; returns the commit."""
    recipe = settings.recipe
    if dest.exists():
        raise ConfigError(f"{dest} already exists", "choose a new folder")
    if not recipe.source.repo:
        raise ConfigError(f"recipe {recipe.name} names no source repository")
    return clone_verified(recipe.source.repo, recipe.source.ref, recipe.source.commit, dest, settings.env)


def _skipped(relative: Path) -> bool:
    return relative.parts[0] in SKIP_COPY or relative.parts[0].endswith(".egg-info") or "__pycache__" in relative.parts


def _same_content(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with atomic.open_regular(a) as fa, atomic.open_regular(b) as fb:
        while True:
            block = fa.read(1 << 20)
            if block != fb.read(1 << 20):
                return False
            if not block:
                return True


def sync_tree(src: Path, dest: Path) -> int:
    """Make ``dest`` hold ``src``'s files, copying only the ones whose *content* changed.

    Unchanged files keep their old modification time, so an incremental build reuses their
    objects; a changed file gets the current time, whatever time the source file carries (a
    checkout, an archive or an editor can give new content an old mtime: comparing mtimes then
    shipped a stale binary). Build outputs in ``dest`` stay."""
    copied = 0
    wanted: set[Path] = set()
    for path in sorted(src.rglob("*")):
        relative = path.relative_to(src)
        if _skipped(relative) or path.is_dir() or (path.is_symlink() and not path.exists()):
            continue
        wanted.add(relative)
        target = dest / relative
        if target.is_file() and _same_content(path, target):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        shutil.copyfile(path, target)  # the copy's mtime is now: newer than every object built before
        shutil.copymode(path, target)
        copied += 1
    if dest.exists():
        for path in sorted(dest.rglob("*"), reverse=True):
            relative = path.relative_to(dest)
            if _skipped(relative):
                continue
            if path.is_file() and relative not in wanted:
                path.unlink()
    return copied


def unpack(tarball: Path, into: Path) -> Path:
    """Extract safely (no absolute paths, links out or devices); strip one top-level folder."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    entries = list(into.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else into


def prepare_source(plan: BuildPlan, env: Mapping[str, str]) -> dict[str, Any]:
    """Put the source into ``src_dir``; returns the manifest's ``source`` record."""
    recipe = plan.recipe
    if plan.source_kind == "git":
        commit = checkout(plan, env)
        return {"repo": plan.source, "ref": plan.ref, "commit": commit or None, "path": None}
    origin = Path(plan.source)
    if plan.source_kind == "tarball":
        origin = unpack(origin, plan.work_dir / "unpacked")
    copied = sync_tree(origin, plan.src_dir)
    log.info("source %s: %d file(s) changed since the last build", plan.source, copied)
    commit = _head(Path(plan.source)) if plan.source_kind == "dir" else None
    dirty = bool(commit) and bool(
        runner.run(["git", "-C", plan.source, "status", "--porcelain"], check=False, echo=False).stdout.strip()
    )
    if commit and recipe.source.commit and commit != recipe.source.commit:
        log.warning(
            "source %s is at commit %s, the recipe pins %s (recorded as built)",
            plan.source,
            commit[:12],
            recipe.source.commit[:12],
        )
    return {
        "repo": recipe.source.repo,
        "ref": recipe.source.ref if commit == recipe.source.commit and not dirty else None,
        "commit": commit,
        "dirty": dirty,
        "path": plan.source,
    }
