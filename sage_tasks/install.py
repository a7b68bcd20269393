"""Install a verified wheel into the target environment, all or nothing, without dependencies.

Why not pip: pip spends most of a wheel install starting itself; this writes the files the
wheel holds (PEP 427 layout: the package, its ``.dist-info``, ``.data/{purelib,platlib,
scripts,data}``) in a fraction of that, and it is transactional:

1. every member is checked (no absolute paths, ``..`` or backslashes) and extracted into a
   staging folder beside site-packages, hashed for the new ``RECORD``;
2. the files of the installed version (its ``RECORD``, only those inside the target prefix) are
   moved into a backup folder;
3. the staged files are moved into place, then ``INSTALLER`` and ``RECORD`` are written.

Any failure (a full disk, a file-size limit) before the end moves everything back: the previous
installation stays as it was. Wheels with console-script entry points (launchers) or C headers,
and installs without a RECORD, go to pip (``Unsupported``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from .errors import EnvironmentProblem, IntegrityError
from .probe import TargetEnv
from .wheelfile import record_hash, sha256_file

INSTALLER_NAME = "sage-tasks"
DATA_KINDS = {"purelib": "purelib", "platlib": "platlib", "scripts": "scripts", "data": "data"}


class Unsupported(Exception):
    """This wheel needs something only pip does (console-script launchers)."""


@dataclass(frozen=True)
class Installed:
    files: int
    replaced: str | None  # the version that was there before, if any


def _safe_member(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or ".." in path.parts or not path.parts:
        raise IntegrityError(f"refusing wheel member {name!r}", "the wheel is malformed or hostile: yank it")
    return path


def _destinations(zf: zipfile.ZipFile, paths: Mapping[str, str]) -> tuple[str, dict[str, Path]]:
    """The ``.dist-info`` folder and, for every file member, where it goes."""
    members = [m for m in zf.namelist() if not m.endswith("/")]
    tops = {_safe_member(m).parts[0] for m in members}
    infos = [t for t in tops if t.endswith(".dist-info")]
    if len(infos) != 1:
        raise IntegrityError(f"{zf.filename} has {len(infos)} .dist-info folders, expected one")
    info = infos[0]
    try:
        wheel_meta = HeaderParser().parsestr(zf.read(f"{info}/WHEEL").decode("utf-8"))
    except (KeyError, UnicodeDecodeError) as e:
        raise IntegrityError(
            f"{zf.filename} has no readable {info}/WHEEL file", "the wheel is malformed: yank it"
        ) from e
    lib = Path(
        paths["purelib"] if (wheel_meta.get("Root-Is-Purelib", "true").strip().lower() == "true") else paths["platlib"]
    )
    if f"{info}/entry_points.txt" in members:
        text = zf.read(f"{info}/entry_points.txt").decode("utf-8")
        if "[console_scripts]" in text or "[gui_scripts]" in text:
            raise Unsupported("console-script entry points")
    data_dir = info[: -len(".dist-info")] + ".data"
    where: dict[str, Path] = {}
    for member in members:
        path = _safe_member(member)
        if path.parts[0] == data_dir:
            if len(path.parts) >= 3 and path.parts[1] == "headers":
                raise Unsupported("C headers (pip puts them under the venv's include/site)")
            if len(path.parts) < 3 or path.parts[1] not in DATA_KINDS:
                raise IntegrityError(f"refusing wheel member {member!r}: unknown .data folder")
            where[member] = Path(paths[DATA_KINDS[path.parts[1]]], *path.parts[2:])
        else:
            where[member] = lib.joinpath(*path.parts)
    return info, where


def _inside(path: Path, prefix: Path) -> bool:
    try:
        path.resolve().relative_to(prefix.resolve())
    except ValueError:
        return False
    return True


def _old_files(target: TargetEnv, package: str, prefix: Path) -> tuple[list[Path], str | None]:
    """The installed version's files inside the target prefix (files elsewhere are not ours)."""
    found = target.installs.get(package)
    if not found:
        return [], None
    if not found.get("files"):
        raise Unsupported("the installed version has no RECORD to remove it by")
    site = Path(str(found["site"]))
    files = [site / str(f) for f in found["files"]]  # type: ignore[union-attr]
    return [f for f in files if f.is_file() and _inside(f, prefix)], str(found.get("version"))


def _leftovers(lib: Path) -> None:
    """Staging folders of installs that died are deleted; their backups are reported, not guessed at."""
    for stale in lib.glob(".sage-tasks-stage-*"):
        shutil.rmtree(stale, ignore_errors=True)
    backups = sorted(str(b) for b in lib.glob(".sage-tasks-backup-*"))
    if backups:
        raise EnvironmentProblem(
            f"an earlier install into {lib} was interrupted; the files it replaced are in {backups[0]}",
            "reinstall the package (or move those files back), then delete that folder",
        )


def install_wheel(wheel: Path, target: TargetEnv, package: str) -> Installed:
    """Install ``wheel`` into ``target`` replacing the installed ``package``, all or nothing."""
    paths = target.paths
    prefix = Path(paths["data"])
    with zipfile.ZipFile(wheel) as zf:
        info, where = _destinations(zf, paths)
        lib = where[f"{info}/WHEEL"].parent.parent
        _leftovers(lib)
        stage = lib / f".sage-tasks-stage-{os.getpid()}"
        backup = lib / f".sage-tasks-backup-{os.getpid()}"
        old, old_version = _old_files(target, package, prefix)
        # anything in the way is backed up too, whether the old RECORD listed it or not
        in_the_way = old + [d for d in where.values() if d.is_file() and d not in set(old)]
        moved: list[tuple[Path, Path]] = []
        placed: list[Path] = []
        records: list[tuple[str, str, str]] = []
        restored = True
        try:
            stage.mkdir(parents=True)
            staged: list[tuple[Path, Path]] = []
            for n, (member, dest) in enumerate(sorted(where.items())):
                data = zf.read(member)
                if member.split("/")[1:2] == ["scripts"]:
                    data = _fix_shebang(data, target.python)
                tmp = stage / str(n)
                tmp.write_bytes(data)
                if (zf.getinfo(member).external_attr >> 16) & 0o111 or data.startswith(b"#!"):
                    tmp.chmod(0o755)
                staged.append((tmp, dest))
                if not member.endswith(f"{info}/RECORD"):
                    records.append((os.path.relpath(dest, lib), record_hash(data), str(len(data))))
            for n, path in enumerate(in_the_way):
                keep = backup / str(n)
                keep.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, keep)
                moved.append((keep, path))
            for tmp, dest in staged:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dest)
                placed.append(dest)
            info_dir = lib / info
            for extra, content in _provenance(wheel).items():
                (info_dir / extra).write_bytes(content)
                placed.append(info_dir / extra)
                records.append((f"{info}/{extra}", record_hash(content), str(len(content))))
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerows(sorted(records))
            writer.writerow((f"{info}/RECORD", "", ""))
            (info_dir / "RECORD").write_text(out.getvalue())
        except BaseException as e:
            restored = _roll_back(placed, moved)
            if not restored:
                raise EnvironmentProblem(
                    f"installing {wheel.name} failed ({e}) and so did putting the previous files back",
                    f"the previous files are in {backup}: move them back or reinstall the package",
                ) from e
            if isinstance(e, OSError):
                where_ = f" ({e.filename})" if e.filename else ""
                raise EnvironmentProblem(
                    f"installing {wheel.name} failed: {e.strerror}{where_}; the previous installation (if any) was kept",
                    "free disk space (or raise the limit) and run again",
                ) from e
            raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            if restored:
                shutil.rmtree(backup, ignore_errors=True)
    _prune_empty(old, lib)
    return Installed(files=len(placed), replaced=old_version)


def _roll_back(placed: list[Path], moved: list[tuple[Path, Path]]) -> bool:
    """Undo a half-done install; False if some previous file could not be put back."""
    try:
        for path in placed:
            path.unlink(missing_ok=True)
        for keep, path in reversed(moved):
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(keep, path)
    except BaseException:
        return False
    return True


def _provenance(wheel: Path) -> dict[str, bytes]:
    """INSTALLER, and PEP 610's direct_url.json with the wheel's sha256: test-kernel records a
    verdict only in the manifest of the very file that was installed."""
    digest = sha256_file(wheel)
    direct = {
        "url": wheel.resolve().as_uri(),
        "archive_info": {"hashes": {"sha256": digest}, "hash": f"sha256={digest}"},
    }
    return {"INSTALLER": (INSTALLER_NAME + "\n").encode(), "direct_url.json": json.dumps(direct).encode()}


def installed_sha256(target: TargetEnv, package: str) -> str | None:
    """The sha256 of the wheel the installed ``package`` came from, when its installer said so."""
    found = target.installs.get(package) or {}
    try:
        direct = json.loads(str(found.get("direct_url") or "null")) or {}
        return direct.get("archive_info", {}).get("hashes", {}).get("sha256")
    except (ValueError, AttributeError):
        return None


def _fix_shebang(data: bytes, python: str) -> bytes:
    if data.startswith(b"#!python"):
        return b"#!" + python.encode() + data[len(b"#!python") :]
    return data


def _prune_empty(removed: list[Path], lib: Path) -> None:
    """Folders the old version left empty go too (never site-packages itself)."""
    for folder in sorted({p.parent for p in removed}, key=lambda p: len(p.parts), reverse=True):
        while folder != lib and _inside(folder, lib) and folder.is_dir():
            try:
                folder.rmdir()  # only succeeds when empty
            except OSError:
                break
            folder = folder.parent
