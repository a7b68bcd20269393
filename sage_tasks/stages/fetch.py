"""fetch: choose the stored wheel that fits this machine, verify it, install it.

Order of trust: the file's size and sha256 must equal the manifest's before anything installs
it; the wheel's own metadata (name, version, tags) and binaries (SASS archs) must agree with
the manifest; a cached copy that does not match is downloaded once more before the store is
called damaged. It is installed without dependencies as a transaction (``install.Change``)
that stays open until the package imports, reports its version and passes the caller's
numerical check. ``WHEEL_URL`` (only when set) bypasses selection, not the checks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ..core import download
from ..core import log as logsetup
from ..core.errors import IntegrityError, NoMatchError
from ..core.settings import Settings
from ..environment import install as installer
from ..store import Store, manifest
from ..store.manifest import Index, WheelManifest
from ..wheel import binaries, wheelfile
from .probe import Machine, TargetEnv
from .selection import Selection, Want, select_wheel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchResult:
    outcome: str  # "installed", "selected" (dry run) or "downloaded" (no install)
    origin: str  # the store's description or the URL
    selection: Selection | None
    entry: WheelManifest | None
    wheel: Path | None
    installed_version: str | None
    want: Want
    target: TargetEnv | None = None  # the target as read back after the install

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "origin": self.origin,
            "wheel_file": self.entry.wheel_file if self.entry else (self.wheel.name if self.wheel else None),
            "verification": self.entry.verification.status if self.entry else None,
            "installed_version": self.installed_version,
            "selection": self.selection.to_dict() if self.selection else None,
            "want": self.want.to_dict(),
        }


def want_for(settings: Settings, machine: Machine) -> Want:
    recipe, target = settings.recipe, machine.target
    return Want(
        package=recipe.package,
        version=recipe.version,
        commit=recipe.source.commit,
        tags=frozenset(target.tags),
        torch_version=target.version_of("torch"),
        torch_cuda=target.torch_cuda,
        torch_cxx11_abi=target.torch_cxx11_abi,
        # the live GPUs decide; an arch only stands in for them when asked with --arch or there is no GPU
        ccs=settings.arch if settings.arch_origin == "--arch" or not machine.gpus else machine.compute_capabilities,
        driver_cuda=machine.driver_cuda,
        needs_archs=recipe.cuda,
        check_torch=recipe.needs_torch,
    )


def report_selection(selection: Selection, origin: str) -> None:
    total = len(selection.accepted) + len(selection.rejected)
    log.info("%s: %d candidate(s), %d fit", origin, total, len(selection.accepted))
    for rejection in selection.rejected:
        log.info("  rejected %s:", rejection.wheel_file)
        for reason in rejection.reasons:
            log.info("    - %s", reason)
    for note in selection.notes:
        log.info("  note: %s", note)
    if selection.chosen:
        log.info("  chose %s (%s)", selection.chosen.wheel_file, selection.chosen.verification.status)
    if selection.unproven:
        log.warning("%s", selection.unproven)


def mismatch(path: Path, sha256: str | None, size: int | None) -> str | None:
    """What is wrong with ``path`` against its expected size and sha256 (None when it matches)."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"{path.name} is {actual_size} bytes, its manifest says {size}"
    if sha256 is None:
        return None
    actual = wheelfile.sha256_file(path)
    if actual != sha256:
        return f"sha256 of {path.name} is {actual[:16]}…, its manifest says {sha256[:16]}…"
    return None


def verify_file(path: Path, sha256: str | None, size: int | None, *, discard: bool = True) -> None:
    """Size and hash first: a mismatching file never reaches the installer; a downloaded copy
    (``discard``) is deleted, a file of the user's (a build in dist/) is left where it is."""
    problem = mismatch(path, sha256, size)
    if problem is None:
        return
    if discard:
        path.unlink(missing_ok=True)
    raise IntegrityError(
        f"{problem}: nothing was installed",
        "the file was altered after its manifest was written: rebuild it, or download it again",
    )


def check_against_wheel(path: Path, entry: WheelManifest, want: Want) -> None:
    """The wheel's own metadata and binaries must say what its manifest says."""
    info = wheelfile.inspect(path)
    if info.version != entry.version or info.name.replace("_", "-") != entry.package.replace("_", "-"):
        raise IntegrityError(
            f"{path.name} is {info.name} {info.version} inside, its manifest says {entry.package} {entry.version}"
        )
    if not want.needs_archs:
        return
    listing = binaries.list_wheel(path)
    actual = binaries.common_sass(listing)
    if not entry.legacy and sorted(entry.cuda_archs) != actual:
        raise IntegrityError(
            f"{path.name} carries machine code for {', '.join(actual) or 'nothing'}, its manifest claims "
            f"{', '.join(entry.cuda_archs) or 'nothing'}",
            "the manifest is wrong or the file was replaced: yank it and republish",
        )
    gaps = binaries.missing(listing, want.ccs)
    if gaps:
        so, lacking = next(iter(gaps.items()))
        raise IntegrityError(f"{so} in {path.name} has no machine code for compute capability {', '.join(lacking)}")


def install(
    change: installer.Change, wheel: Path, expected_version: str, package: str, sha256: str | None = None
) -> TargetEnv:
    """Install --no-deps into the target as a transaction that stays open (the caller commits it
    after the numerical check) and read it back: it must import and be ``expected_version``.
    ``sha256``: what ``verify_file``/``mismatch`` has just checked the file against (recorded in
    its direct_url.json without hashing the file again). Returns the target as it is now."""
    return change.install(wheel, package, expected_version, sha256=sha256)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _cached_download(store: Store, entry: WheelManifest, cache_dir: Path) -> Path:
    """The wheel, size- and hash-checked. A copy that does not match (in our cache or the Hugging
    Face cache) is dropped and downloaded once more; only a fresh copy that mismatches too means
    the store's file is damaged, and the error names the file and the store."""
    folder = cache_dir / "wheels" / entry.wheel_sha256[:16]
    cached = folder / entry.wheel_file
    if cached.is_file():
        if mismatch(cached, entry.wheel_sha256, entry.wheel_size) is None:
            log.info("using cached %s", cached)
            return cached
        log.warning("the cached %s does not match its manifest: removed, downloading it again", cached)
        cached.unlink()
    wheel = store.download(entry, folder)
    problem = mismatch(wheel, entry.wheel_sha256, entry.wheel_size)
    if problem is None:
        return wheel
    log.warning("%s (copy at %s): downloading it once more", problem, wheel)
    if _inside(wheel, cache_dir):
        wheel.unlink(missing_ok=True)
    wheel = store.download(entry, folder, fresh=True)
    problem = mismatch(wheel, entry.wheel_sha256, entry.wheel_size)
    if problem is None:
        return wheel
    if _inside(wheel, cache_dir):
        wheel.unlink(missing_ok=True)
    raise IntegrityError(
        f"{entry.wheel_file} in {store.description} is damaged: a fresh download does not match its manifest "
        f"({problem}); nothing was installed",
        f"republish {entry.wheel_file} to {store.description} (`invoke publish --replace`), or choose another wheel",
    )


def fetch_from_store(
    settings: Settings,
    machine: Machine,
    store: Store,
    index: Index,
    *,
    dry_run: bool = False,
    install_wheel: bool = True,
    change: installer.Change | None = None,
) -> FetchResult:
    """Choose, download, check; with ``change`` (the environment's lock), install as an open
    transaction that the caller commits after the numerical check."""
    want = want_for(settings, machine)
    selection = select_wheel(index.wheels, want)
    report_selection(selection, store.description)
    installed_now = machine.target.version_of(settings.recipe.package)
    installed_sha = installer.installed_sha256(machine.target, settings.recipe.package)
    for entry in index.wheels:
        same = entry.wheel_sha256 == installed_sha if installed_sha else entry.version == installed_now
        if entry.yanked and same:
            log.warning(
                "the installed %s %s was yanked (%s): replacing it",
                entry.package,
                installed_now,
                entry.yanked.get("reason"),
            )
    entry = selection.chosen
    if entry is None:
        raise NoMatchError(
            f"none of the {len(index.wheels)} wheel(s) in {store.description} fits this machine",
            "build one: `invoke build` (or `invoke auto`, which builds and publishes on a miss)",
        )
    if dry_run:
        return FetchResult("selected", store.description, selection, entry, None, None, want)
    logsetup.step(log, f"fetch {entry.wheel_file}")
    wheel = _cached_download(store, entry, settings.cache_dir)
    check_against_wheel(wheel, entry, want)
    install_wheel = install_wheel and change is not None
    after = (  # _cached_download has checked the file against entry.wheel_sha256
        install(change, wheel, entry.version, settings.recipe.package, entry.wheel_sha256)
        if change and install_wheel
        else None
    )
    installed = after.version_of(settings.recipe.package) if after else None
    if after:
        log.info("installed %s %s into %s", settings.recipe.package, installed, machine.target.python)
    logsetup.end_step(log)
    outcome = "installed" if install_wheel else "downloaded"
    return FetchResult(outcome, store.description, selection, entry, wheel, installed, want, after)


@dataclass(frozen=True)
class UrlWheel:
    """What ``WHEEL_URL`` names, once the checks that need no download have passed."""

    name: str  # the wheel's file name (the URL's last path segment)
    entry: WheelManifest | None  # the store's manifest of that file, if it has one
    sha256: str | None  # the hash it must have (None only with ALLOW_UNSAFE_WHEEL)


def check_wheel_url(settings: Settings, index: Index) -> UrlWheel:
    """Pure: every check on ``WHEEL_URL`` that needs no download, shared by ``fetch`` and the plan
    of ``auto`` (which must refuse before pinning what fetch would refuse after). The URL's scheme
    (https unless SAGE_ALLOW_INSECURE_URLS), a valid wheel file name of the recipe's package, not
    yanked or failed in the store, and a known sha256 (the store's manifest or WHEEL_SHA256) unless
    ALLOW_UNSAFE_WHEEL."""
    url = settings.wheel_url
    assert url
    download.check_scheme(url, settings.allow_http)
    name = manifest.check_wheel_name(download.file_name(url))
    if canonicalize_name(name.split("-")[0]) != canonicalize_name(settings.recipe.package):
        raise IntegrityError(
            f"WHEEL_URL names {name}, which is not a {settings.recipe.package} wheel; nothing was installed",
            f"point WHEEL_URL at a {settings.recipe.package} wheel",
        )
    entry = index.get(name)
    if (
        entry is not None
        and (entry.yanked or entry.verification.status == "failed")
        and not settings.allow_unsafe_wheel
    ):
        why = f"yanked ({entry.yanked.get('reason')})" if entry.yanked else "failed its kernel test"
        raise IntegrityError(
            f"WHEEL_URL names {name}, which the store marks as {why}", "pick another wheel, or set ALLOW_UNSAFE_WHEEL=1"
        )
    sha = settings.wheel_sha256 or (entry.wheel_sha256 if entry else None)
    if sha is None and not settings.allow_unsafe_wheel:
        raise IntegrityError(
            f"WHEEL_URL {url} has no known sha256 (no manifest of {name} in the store, no WHEEL_SHA256)",
            "set WHEEL_SHA256, publish its manifest, or set ALLOW_UNSAFE_WHEEL=1 to install it unchecked",
        )
    return UrlWheel(name, entry, sha)


def fetch_from_url(
    settings: Settings,
    machine: Machine,
    index: Index,
    *,
    dry_run: bool = False,
    install_wheel: bool = True,
    change: installer.Change | None = None,
) -> FetchResult:
    """``WHEEL_URL``: only with a known sha256 (a manifest of that file, or ``WHEEL_SHA256``), and
    only a wheel of the recipe's package; installed like a stored wheel (``change``)."""
    url = settings.wheel_url
    assert url
    want = want_for(settings, machine)
    checked = check_wheel_url(settings, index)
    name, entry, sha = checked.name, checked.entry, checked.sha256
    if sha is None:
        log.warning("ALLOW_UNSAFE_WHEEL=1: installing %s without a hash check", name)
    if dry_run:
        return FetchResult("selected", url, None, entry, None, None, want)
    dest = settings.cache_dir / "url-wheels" / name
    size = entry.wheel_size if entry and sha == entry.wheel_sha256 else None
    wheel = download.fetch(url, dest, allow_http=settings.allow_http, progress=settings.progress)
    problem = mismatch(wheel, sha, size)
    if problem is not None:  # a transfer gone wrong is downloaded once more; twice means the file at the URL
        log.warning("%s: downloading %s once more", problem, url)
        wheel.unlink(missing_ok=True)
        wheel = download.fetch(url, dest, allow_http=settings.allow_http, progress=settings.progress)
        problem = mismatch(wheel, sha, size)
        if problem is not None:
            wheel.unlink(missing_ok=True)
            raise IntegrityError(
                f"the wheel at WHEEL_URL {url} does not match its expected hash ({problem}); nothing was installed",
                "check WHEEL_URL and WHEEL_SHA256 (or the store's manifest of that file)",
            )
    info = wheelfile.inspect(wheel)
    if not set(info.tags) & set(want.tags):
        raise IntegrityError(f"{name} has tags {', '.join(info.tags)}, none fits {machine.target.python}")
    if entry is not None:
        check_against_wheel(wheel, entry, want)
    install_wheel = install_wheel and change is not None
    after = install(change, wheel, info.version, settings.recipe.package, sha) if change and install_wheel else None
    installed = after.version_of(settings.recipe.package) if after else None
    return FetchResult("installed" if install_wheel else "downloaded", url, None, entry, wheel, installed, want, after)
