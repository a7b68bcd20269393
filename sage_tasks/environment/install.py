"""Install a wheel into the target environment as a transaction, without dependencies.

``Change`` is the one way sage-tasks changes an environment::

    with Change(target, env, command="fetch") as change:   # the environment's lock, then recovery
        after = change.install(wheel, package, version)     # checked, staged, journalled, moved, read back
        ...the numerical check...
        change.commit()                                     # the commit point

1. the wheel is checked before anything is unpacked (``wheelcheck``: names, sizes, ratio, the
   ``.dist-info`` and METADATA against the file name and the expected package, RECORD);
2. pypa ``installer`` unpacks it into a staging folder of this process (laid out by absolute
   path, launchers for console scripts, ``RECORD`` written), verifying each member's hash as it
   streams; no file it places may belong to another installed distribution;
3. the journal (``transaction``) records what will be replaced and placed; the installed
   version's files are moved aside, the staged ones moved in;
4. read-back: the package must import in the target interpreter and report the version.

Leaving the ``with`` block without ``commit`` (a failed read-back or check, an exception,
SIGINT/SIGTERM) rolls back: the previous files byte for byte, or no package. A kill is finished
by the next command's recovery.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from packaging.utils import canonicalize_name

from ..core import runner
from ..core.errors import EnvironmentProblem, IntegrityError, SageTasksError
from ..stages import probe
from ..stages.probe import TargetEnv
from ..wheel import wheelcheck
from ..wheel.wheelfile import sha256_file
from . import envlock, transaction

log = logging.getLogger(__name__)

INSTALLER_NAME = "sage-tasks"
READ_BACK_TIMEOUT_S = 600


def installed_sha256(target: TargetEnv, package: str) -> str | None:
    """The sha256 of the wheel the installed ``package`` came from, when its installer said so."""
    found = target.installs.get(package) or {}
    try:
        direct = json.loads(str(found.get("direct_url") or "null")) or {}
        return direct.get("archive_info", {}).get("hashes", {}).get("sha256")
    except (ValueError, AttributeError):
        return None


def _provenance(wheel: Path, sha256: str | None = None) -> dict[str, bytes]:
    """INSTALLER, and PEP 610's direct_url.json with the wheel's sha256: test-kernel records a
    verdict only in the manifest of the very file that was installed. ``sha256``: the digest the
    caller has just checked the file against (no second pass over the file), else computed here."""
    digest = sha256 or sha256_file(wheel)
    direct = {
        "url": wheel.resolve().as_uri(),
        "archive_info": {"hashes": {"sha256": digest}, "hash": f"sha256={digest}"},
    }
    return {"INSTALLER": (INSTALLER_NAME + "\n").encode(), "direct_url.json": json.dumps(direct).encode()}


def site_paths(target: TargetEnv) -> dict[str, str]:
    """The target's paths with ``platlib`` spelled as ``purelib`` when both are one folder (a
    venv's ``lib64 -> lib`` link with ``platlibdir = lib64``): a file must have one name only,
    or it would be journalled, moved and owned twice."""
    paths = {key: normal(value) for key, value in target.paths.items()}
    if os.path.realpath(paths["platlib"]) == os.path.realpath(paths["purelib"]):
        paths["platlib"] = paths["purelib"]
    return paths


def normal(path: str) -> str:
    """``normpath``, and a leading ``//`` (which POSIX lets normpath keep, and an interpreter
    started as ``//venv/bin/python`` reports) spelled ``/``: each file has one spelling."""
    path = os.path.normpath(path)
    return path[1:] if path.startswith("//") else path


def schemes(target: TargetEnv, project: str) -> dict[str, str]:
    """Where each part of a wheel goes in the target (pip's layout, headers included)."""
    paths = site_paths(target)
    major_minor = ".".join(target.version.split(".")[:2])
    return {
        "purelib": paths["purelib"],
        "platlib": paths["platlib"],
        "scripts": paths["scripts"],
        "data": paths["data"],
        "headers": os.path.join(paths["data"], "include", "site", f"python{major_minor}", project),
    }


# ---------------------------------------------------------------- planning (reads only)


def _old_files(target: TargetEnv, package: str) -> tuple[list[str], str | None]:
    """The installed version's files inside the target's site-packages, read now (under the lock:
    what the target said before it was taken may be stale), with its whole ``.dist-info`` folder
    and the bytecode of its modules: what the install replaces."""
    project = canonicalize_name(package)
    paths = site_paths(target)
    prefix = paths["data"]
    out: dict[str, None] = {}
    versions = []
    listings: dict[str, dict[str, list[str]]] = {}
    files_in: dict[str, frozenset[str]] = {}
    for site in sorted({paths["purelib"], paths["platlib"]}):
        try:
            entries = sorted(os.listdir(site))
        except OSError:
            continue
        for entry in entries:
            if entry.endswith((".egg-info", ".egg")):  # a setup.py install of it (legacy formats)
                version = _legacy(site, entry, project, prefix, out)
                if version is not None:
                    versions.append(version)
                continue
            if not entry.endswith(".dist-info"):
                continue
            name, _, version = entry[: -len(".dist-info")].rpartition("-")
            if canonicalize_name(name) != project:
                continue
            info_dir = os.path.join(site, entry)
            try:
                with open(os.path.join(info_dir, "RECORD"), encoding="utf-8", newline="") as handle:
                    listed = [row[0] for row in csv.reader(handle) if row]
            except (OSError, UnicodeDecodeError, csv.Error) as e:
                raise EnvironmentProblem(
                    f"the installed {package} {version} has no readable RECORD ({e}): sage-tasks cannot tell its files",
                    f"uninstall it first: {target.python} -m pip uninstall {package}",
                ) from e
            versions.append(version)
            for entry_path in listed:
                path = _join_normal(site, entry_path)
                if not transaction.inside(path, prefix):
                    continue  # not ours to move: outside the environment
                folder, _, base = path.rpartition(os.sep)
                if base in _names(folder, files_in):  # one listing per folder, not a stat per file
                    out[path] = None
                if base.endswith(".py"):
                    cache = folder + os.sep + "__pycache__"
                    for pyc in _bytecode(cache, listings).get(base[:-3], ()):
                        out[cache + os.sep + pyc] = None
            for root, _, names in os.walk(info_dir):  # an unlisted file would keep the old .dist-info alive
                for name_ in names:
                    out[os.path.join(root, name_)] = None
    return list(out), ", ".join(versions) or None


def _legacy(site: str, entry: str, project: str, prefix: str, out: dict[str, None]) -> str | None:
    """A ``setup.py install`` of ``project``: an ``.egg-info`` folder beside its files (those it
    lists in ``installed-files.txt``, and the folder itself), or a whole ``.egg`` (folder or zip).
    Adds what the install replaces to ``out``; returns its version (``?`` when unnamed), or None
    when ``entry`` is not this project's. An ``.egg-link`` (a develop install) is never touched."""
    stem = entry.rsplit(".", 1)[0]
    name, _, rest = stem.partition("-")
    if canonicalize_name(name) != project:
        return None
    path = os.path.join(site, entry)
    if entry.endswith(".egg-info") and os.path.isdir(path):
        listing = os.path.join(path, "installed-files.txt")
        try:
            with open(listing, encoding="utf-8", errors="replace") as handle:
                listed = [line.strip() for line in handle if line.strip()]
        except OSError:
            listed = []
        for relative in listed:
            file = os.path.normpath(os.path.join(path, relative))
            if file.startswith(prefix + os.sep) and (os.path.isfile(file) or os.path.islink(file)):
                out[file] = None
    if os.path.isdir(path) and not os.path.islink(path):
        for root, _, names in os.walk(path):
            for name_ in names:
                out[os.path.join(root, name_)] = None
    elif os.path.isfile(path):  # a zipped egg, or an .egg-info file (distutils)
        out[path] = None
    return rest.partition("-")[0] or "?"


def _join_normal(folder: str, relative: str) -> str:
    """``normpath(join(folder, relative))`` for a normalised ``folder``, without normpath's cost
    for the usual RECORD row (no ``.``/``..`` parts, no doubled or trailing separator)."""
    plain = os.sep == "/" and not relative.startswith(("/", "./", "../"))
    if plain and "/." not in relative and "//" not in relative and not relative.endswith("/"):
        return folder + "/" + relative
    return os.path.normpath(os.path.join(folder, relative))


def _bytecode(cache: str, seen: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    """The ``.pyc`` files in a ``__pycache__`` folder by module stem (``mod.cpython-311.pyc`` →
    ``mod``), listed once per folder."""
    if cache not in seen:
        by_stem: dict[str, list[str]] = {}
        try:
            names = os.listdir(cache)
        except OSError:
            names = []
        for name in names:
            if name.endswith(".pyc"):  # STEM.TAG.pyc or STEM.TAG.opt-N.pyc
                tagged = name[: -len(".pyc")]
                if re.search(r"\.opt-\d+$", tagged):
                    tagged = tagged.rpartition(".")[0]
                by_stem.setdefault(tagged.rpartition(".")[0], []).append(name)
        seen[cache] = by_stem
    return seen[cache]


def _names(folder: str, seen: dict[str, frozenset[str]]) -> frozenset[str]:
    """The names in ``folder`` that are files or links (not folders), listed once."""
    if folder not in seen:
        try:
            with os.scandir(folder) as entries:
                seen[folder] = frozenset(e.name for e in entries if not e.is_dir(follow_symlinks=False))
        except OSError:
            seen[folder] = frozenset()
    return seen[folder]


def _owners(roots: set[str], placed: set[str], project: str) -> dict[str, str]:
    """Which of ``placed`` another installed distribution's RECORD lists (path → distribution)."""
    taken: dict[str, str] = {}
    for root in roots:
        try:
            entries = os.listdir(root)
        except OSError:
            continue
        # a RECORD row that names one of ``placed`` holds its first folder (or, outside the root,
        # its file name): a RECORD without any of these strings is not parsed (torch's is ~20k rows)
        keys = set()
        below = root.rstrip(os.sep) + os.sep
        for path in placed:
            if path.startswith(below):
                keys.add(path[len(below) :].split(os.sep, 1)[0])
            else:
                keys.add(os.path.basename(path))
        for entry in entries:
            if not entry.endswith(".dist-info"):
                continue
            name = entry[: -len(".dist-info")].rpartition("-")[0]
            if canonicalize_name(name) == project:
                continue
            try:
                with open(os.path.join(root, entry, "RECORD"), encoding="utf-8", errors="replace", newline="") as f:
                    text = f.read()
            except OSError:
                continue
            if not any(key in text for key in keys):
                continue
            for row in csv.reader(io.StringIO(text, newline="")):
                if row:
                    path = os.path.normpath(os.path.join(root, row[0]))
                    if path in placed:
                        taken[path] = name
    return taken


def stage_base(target: TargetEnv, project: str) -> str:
    """The folder the staged tree mirrors: the deepest one that holds every scheme of the target
    (the environment's prefix in a venv). Every placed and replaced file lies inside it."""
    return os.path.commonpath(list(schemes(target, project).values()))


def _staging_destination(mirrored: dict[str, str], python: str):  # -> SchemeDictionaryDestination
    """pypa ``installer``'s destination for a fresh staging folder of this process: nothing is
    there to overwrite, so instead of a ``stat`` per file it refuses to write one path twice (two
    members, or a member and a launcher, landing on one file). ``written``: every staged path,
    normalised as installer normalises the path it writes (a launcher's name is not a checked
    member name: ``x/../tool`` is ``tool``)."""
    from installer.destinations import SchemeDictionaryDestination

    class _Staging(SchemeDictionaryDestination):
        def __init__(self) -> None:
            super().__init__(mirrored, interpreter=python, script_kind="posix", overwrite_existing=True)
            self.written: set[str] = set()

        def write_to_fs(self, scheme, path, stream, is_executable):  # type: ignore[no-untyped-def]
            where = os.path.normpath(os.path.join(self.scheme_dict[scheme], path))
            if where in self.written:
                raise ValueError(f"two members of the wheel land on {path} ({scheme})")
            self.written.add(where)
            return super().write_to_fs(scheme, path, stream, is_executable)

    return _Staging()


def stage(
    wheel: Path,
    target: TargetEnv,
    package: str,
    version: str | None,
    new_root: Path,
    sha256: str | None = None,
    base: str = os.sep,
) -> tuple[list[str], list[str]]:
    """Check the wheel and unpack it into ``new_root`` (a fresh folder, mirroring ``base``); returns
    the modules to import and the absolute destinations of every staged file, sorted.
    ``sha256``: the wheel's digest, when the caller has just checked it."""
    from installer import install as unpack
    from installer.exceptions import InstallerError

    with wheelcheck.open_zip(wheel) as zf:
        checked = wheelcheck.check(wheel, zf, package, version)
        # the schemes mirrored under new_root (what a destdir does, without its per-file cost):
        # RECORD's paths are relative between schemes, the same staged as in place
        mirrored = {k: transaction._mirror(new_root, v, base) for k, v in schemes(target, checked.name).items()}
        destination = _staging_destination(mirrored, target.python)
        try:
            unpack(wheelcheck.source(checked, zf), destination, _provenance(wheel, sha256))
        except (InstallerError, ValueError) as e:
            raise IntegrityError(f"{wheel.name} cannot be installed: {e}", wheelcheck.HINT) from e
        staged, real = len(str(new_root)), base.rstrip(os.sep)
        placed = sorted(real + path[staged:] for path in destination.written)
        return wheelcheck.top_level_modules(checked, zf), placed


def read_back(
    target: TargetEnv, package: str, version: str, modules: list[str], env: Mapping[str, str], wheel_name: str
) -> TargetEnv:
    """The package must import in the target and report ``version``; returns the target as it is now.
    One interpreter start: ``_target_facts`` reads the facts, then imports ``modules``."""
    done = runner.run(
        probe.facts_command(target.python, [package], env, imports=modules),
        env=env,
        check=False,
        echo=False,
        timeout=READ_BACK_TIMEOUT_S,
    )
    facts = probe.parse_facts(done.stdout) if done.returncode == 0 else None
    if facts is None:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        error = f"the interpreter exited with {done.returncode}: {tail}"
    else:
        error = facts.get("import_error")
    if error:
        what = ", ".join(modules) or package
        raise EnvironmentProblem(
            f"after installing {wheel_name}, `import {what}` in {target.python} fails: {error}",
            "the wheel does not work in this environment (torch or Python differ?): fetch or build another",
        )
    assert facts is not None
    after = probe.target_from_facts(target.python, facts)
    said = after.version_of(package)
    if said != version:
        raise EnvironmentProblem(
            f"after installing {wheel_name}, {target.python} reports {package} {said}, not {version}",
            "another copy of the package shadows it (PYTHONPATH, a .pth file?): remove it and run again",
        )
    return after


# ---------------------------------------------------------------- the one way to change an environment


class Change:
    """The environment's lock, held for one command; recovery on entry; at most one open
    transaction, rolled back on leaving unless committed."""

    def __init__(self, target: TargetEnv, env: Mapping[str, str], *, command: str) -> None:
        self.target = target
        self.env = env
        self.command = command
        self.state_dir = envlock.state_dir(target.paths)
        self.recovered: str | None = None
        self.restored: str | None = None
        self.txn: transaction.Transaction | None = None
        self._stack = ExitStack()

    def __enter__(self) -> Change:
        where = f"{self.target.python} ({self.state_dir.parent})"
        with ExitStack() as stack:
            stack.enter_context(envlock.hold(self.state_dir, self.env, command=self.command, where=where))
            stack.enter_context(transaction.interruptible())
            transaction.pause(self.env, "locked")
            self.recovered = transaction.recover(self.state_dir, self.env)
            if self.recovered:
                log.warning("%s", self.recovered)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        try:
            mine = transaction.read_journal(self.state_dir)
            if mine is not None and mine.pid == os.getpid():  # also one begun an instant before a signal
                try:
                    transaction.Transaction(self.state_dir, mine, self.env).finish_or_roll_back()
                except OSError as e:
                    raise EnvironmentProblem(
                        f"rolling back the install into {self.target.python} failed: {e}",
                        f"run the command again: it finishes the journal in {self.state_dir}",
                    ) from e
                if mine.state == transaction.OPEN:
                    self.restored = f"restored {mine.restores} in {self.target.python}"
                    log.warning("%s (the install of %s was rolled back)", self.restored, mine.description)
                    if isinstance(error, SageTasksError):  # the run's last line says what was restored too
                        error.message = f"{error.message}; {self.restored}"
        finally:
            self._stack.close()

    def install(
        self, wheel: Path, package: str, version: str, *, target: TargetEnv | None = None, sha256: str | None = None
    ) -> TargetEnv:
        """Stage, journal, move into place, read back. The transaction stays open: ``commit`` ends it.
        ``sha256``: the digest the caller has just checked ``wheel`` against (recorded, not recomputed)."""
        target = target or self.target
        modules = self.place(wheel, package, version, target=target, sha256=sha256)
        after = read_back(target, package, version, modules, self.env, wheel.name)
        transaction.pause(self.env, "read-back")
        log.info("installed %s %s into %s (not committed until checked)", package, version, target.python)
        return after

    def place(
        self, wheel: Path, package: str, version: str, *, target: TargetEnv | None = None, sha256: str | None = None
    ) -> list[str]:
        """Stage, journal, move into place (no read-back); returns the modules a read-back imports."""
        if self.txn is not None and self.txn.open:
            raise RuntimeError("one open install per Change")
        target = target or self.target
        project = canonicalize_name(package)
        base = stage_base(target, project)
        folder = transaction.new_folder(self.state_dir)
        try:
            modules, placed = stage(wheel, target, package, version, folder / "new", sha256, base)
            transaction.pause(self.env, "staged")
            placed_set = set(placed)
            paths = site_paths(target)
            roots = {paths["purelib"], paths["platlib"]}
            taken = _owners(roots, placed_set, project)
            if taken:
                path, owner = next(iter(sorted(taken.items())))
                raise IntegrityError(
                    f"{wheel.name} would overwrite {path}, which belongs to {owner} ({len(taken)} such file(s)); "
                    "nothing was installed",
                    wheelcheck.HINT,
                )
            old, old_version = _old_files(target, package)
            old_set = set(old)
            in_the_way = [p for p in placed if p not in old_set and os.path.lexists(p)]
            replaced = old + in_the_way
        except OSError as e:
            shutil.rmtree(folder, ignore_errors=True)
            where = f" ({e.filename})" if e.filename else ""
            raise EnvironmentProblem(
                f"unpacking {wheel.name} failed: {e.strerror or e}{where}; nothing in {target.python} was changed, "
                "the previous installation (if any) was kept",
                "free disk space (or raise the file-size limit) and run again",
            ) from e
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        restores = f"{package} {old_version}" if old_version else f"no {package} (it was not installed)"
        self.txn = transaction.begin(
            self.state_dir,
            folder,
            package=package,
            description=f"{package} {old_version or '(none)'} → {version}",
            restores=restores,
            replaced=replaced,
            placed=placed,
            roots=sorted(set(schemes(target, project).values())),
            env=self.env,
            base=base,
        )
        try:
            self.txn.apply()
        except OSError as e:  # rolled back on leaving the block
            where = f" ({e.filename})" if e.filename else ""
            raise EnvironmentProblem(
                f"installing {wheel.name} into {target.python} failed: {e.strerror}{where}",
                "free disk space (or fix permissions) and run again",
            ) from e
        return modules

    def commit(self, *, unverified: bool = False) -> None:
        if self.txn is None or not self.txn.open:
            return
        transaction.pause(self.env, "checked")
        self.txn.commit()
        if unverified:
            log.warning(
                "committed %s without a numerical check (unverified: no GPU here)", self.txn.journal.description
            )
        else:
            log.info("committed %s", self.txn.journal.description)
