"""The pinned torch/torchvision/torchaudio/triton stack: resolve, compare, install what differs.

Resolution order (highest first): environment variables (``TORCH_VERSION``...) > the store's
manifest for this variant > the committed stack lock. ``diff``, ``commands`` and ``pip_command``
(the bare pip baseline) are pure; ``apply`` installs the packages that differ with uv (pip as
fallback, see ``installers``), downloading everything before the environment changes, then
re-reads and verifies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ..core import archs, atomic, runner, tomlfile
from ..core import log as logsetup
from ..core.errors import ConfigError, EnvironmentProblem
from ..environment import installers
from ..store.manifest import WheelManifest
from . import probe, stack_size

log = logging.getLogger(__name__)

PACKAGES = ("torch", "torchvision", "torchaudio", "triton")
ENV_VARS = {
    "torch": "TORCH_VERSION",
    "torchvision": "TORCHVISION_VERSION",
    "torchaudio": "TORCHAUDIO_VERSION",
    "triton": "TRITON_VERSION",
}
INDEX_ENV_VAR = "TORCH_INDEX_URL"
FLAVOURED = ("torch", "torchvision", "torchaudio")  # packages whose index builds carry +cuXYZ
_LOCK_KEYS = {"name", "description", "target_arch", "torch_index_url", "packages"}


@dataclass(frozen=True)
class Stack:
    versions: Mapping[str, str]
    index_url: str | None
    target_arch: str | None = None
    name: str = ""
    origins: Mapping[str, str] = field(default_factory=dict)

    @property
    def flavor(self) -> str | None:
        return archs.flavor_from_index_url(self.index_url)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "versions": dict(self.versions),
            "index_url": self.index_url,
            "target_arch": self.target_arch,
            "origins": dict(self.origins),
        }


@dataclass(frozen=True)
class Difference:
    package: str
    wanted: str
    installed: str | None
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"package": self.package, "wanted": self.wanted, "installed": self.installed, "reason": self.reason}


# ---------------------------------------------------------------- locks


def locks_dir(manifests_dir: Path) -> Path:
    return manifests_dir / "stacks"


def known_locks(manifests_dir: Path) -> list[str]:
    return tomlfile.names_in(locks_dir(manifests_dir))


def load_lock(name_or_path: str, manifests_dir: Path) -> Stack:
    path = tomlfile.find(name_or_path, locks_dir(manifests_dir), "stack lock")
    data = tomlfile.load(path)
    tomlfile.check_keys(data, _LOCK_KEYS, str(path))
    packages = tomlfile.require(data, "packages", dict, str(path))
    tomlfile.check_keys(packages, PACKAGES, f"[packages] of {path}")
    missing = [p for p in PACKAGES if p not in packages]
    if missing:
        raise ConfigError(f"stack lock {path} does not pin {', '.join(missing)}", f"add them to [packages] of {path}")
    tomlfile.check_types(data, {"name": str, "description": str, "target_arch": str, "torch_index_url": str}, str(path))
    tomlfile.check_types(packages, dict.fromkeys(PACKAGES, str), f"[packages] of {path}")
    target = data.get("target_arch")
    name = data.get("name", path.stem)
    return Stack(
        versions={p: str(packages[p]) for p in PACKAGES},
        index_url=data.get("torch_index_url"),
        target_arch=archs.normalize_arch(target) if target else None,
        name=name,
        origins={p: f"lock {name}" for p in [*PACKAGES, "index_url"]},
    )


def lock_for_machine(ccs: Sequence[str], default: str, manifests_dir: Path) -> Stack:
    """The committed lock whose target arch is this machine's GPU; else the default lock."""
    for name in known_locks(manifests_dir):
        lock = load_lock(name, manifests_dir)
        if lock.target_arch and lock.target_arch in ccs:
            return lock
    return load_lock(default, manifests_dir)


# ---------------------------------------------------------------- resolution (pure)


def from_manifest(entry: WheelManifest) -> dict[str, str | None]:
    return {
        "torch": entry.torch_version,
        "torchvision": entry.torchvision_version,
        "torchaudio": entry.torchaudio_version,
        "triton": entry.triton_version,
        "index_url": entry.torch_index_url,
    }


def resolve(env: Mapping[str, str], store_entry: WheelManifest | None, lock: Stack) -> Stack:
    """Per package: environment variable > store manifest of this variant > committed lock."""
    store = from_manifest(store_entry) if store_entry else {}
    store_origin = f"store manifest {store_entry.wheel_file}" if store_entry else ""
    versions: dict[str, str] = {}
    origins: dict[str, str] = {}
    for package in PACKAGES:
        if env.get(ENV_VARS[package]):
            versions[package], origins[package] = env[ENV_VARS[package]].strip(), f"env {ENV_VARS[package]}"
        elif store.get(package):
            versions[package], origins[package] = str(store[package]), store_origin
        else:
            versions[package], origins[package] = lock.versions[package], lock.origins.get(package, f"lock {lock.name}")
        try:
            Version(versions[package])
        except InvalidVersion as e:
            raise ConfigError(f"'{versions[package]}' is not a version for {package} ({origins[package]})") from e
    if env.get(INDEX_ENV_VAR):
        index_url, origins["index_url"] = env[INDEX_ENV_VAR].strip(), f"env {INDEX_ENV_VAR}"
    elif store.get("index_url"):
        index_url, origins["index_url"] = store["index_url"], store_origin
    else:
        index_url, origins["index_url"] = lock.index_url, lock.origins.get("index_url", f"lock {lock.name}")
    return Stack(versions=versions, index_url=index_url, target_arch=lock.target_arch, name=lock.name, origins=origins)


def wanted_spec(package: str, version: str, flavor: str | None) -> str:
    """The exact version pip must install: with the index's CUDA label where torch builds have one."""
    parsed = Version(version)
    if parsed.local is None and flavor and package in FLAVOURED:
        return f"{parsed.public}+{flavor}"
    return str(parsed)


def _compare(package: str, wanted: str, installed: str | None, stack: Stack, torch_cuda: str | None) -> str | None:
    if installed is None:
        return "not installed"
    want, have = Version(wanted), Version(installed)
    if want.local is not None:
        return None if want == have else f"{installed} installed, {wanted} wanted"
    if want.public != have.public:
        return f"{installed} installed, {wanted} wanted"
    flavor = stack.flavor
    if package == "torch" and flavor:
        want_cuda = archs.cuda_from_flavor(flavor)
        if (want_cuda or None) != (torch_cuda or None) and not (flavor == "cpu" and torch_cuda is None):
            built = f"CUDA {torch_cuda}" if torch_cuda else "no CUDA"
            return f"{installed} is built for {built}, the index gives {flavor}"
    elif package in FLAVOURED and flavor and have.local is not None and have.local != flavor:
        return f"{installed} is the {have.local} build, the index gives {flavor}"
    return None


def diff(stack: Stack, target: probe.TargetEnv) -> list[Difference]:
    """Packages whose installed version (or CUDA flavour) differs from the pinned one."""
    found = []
    for package in PACKAGES:
        wanted = stack.versions[package]
        installed = target.version_of(package)
        reason = _compare(package, wanted, installed, stack, target.torch_cuda)
        if reason:
            found.append(Difference(package, wanted_spec(package, wanted, stack.flavor), installed, reason))
    return found


def pip_command(python: str, differences: Sequence[Difference], stack: Stack) -> list[str]:
    """One pip install for exactly the packages that differ (no forced reinstall)."""
    args = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    args += [f"{d.package}=={d.wanted}" for d in differences]
    if stack.index_url:
        args += ["--index-url", stack.index_url]
    return args


def as_if_installed(target: probe.TargetEnv, differences: Sequence[Difference], stack: Stack) -> probe.TargetEnv:
    """The target as it will look once the differences are installed (for dry runs)."""
    if not differences:
        return target
    packages = dict(target.packages)
    packages.update({d.package: d.wanted for d in differences})
    changes: dict[str, object] = {"packages": packages}
    if any(d.package == "torch" for d in differences):
        changes["torch_cuda"] = archs.cuda_from_flavor(stack.flavor) or target.torch_cuda
        changes["torch_cxx11_abi"] = True if target.torch_cxx11_abi is None else target.torch_cxx11_abi
    return dataclasses.replace(target, **changes)


# ---------------------------------------------------------------- action

INTERRUPTED_MARKER = ".sage-tasks/pin-in-progress.json"  # in the target's site-packages while pin installs
GIB = 1024**3


def disk_needed(differences: Sequence[Difference]) -> int:
    """Bytes a stack install may need (download + unpacked): a CUDA torch is several GB."""
    if any(d.package == "torch" for d in differences):
        return 8 * GIB
    return GIB if differences else 0


def marker_path(target: probe.TargetEnv) -> Path | None:
    purelib = target.paths.get("purelib")
    return Path(purelib) / INTERRUPTED_MARKER if purelib else None


def interrupted(target: probe.TargetEnv) -> bool:
    """A pin was killed while installing into this environment: its files cannot be trusted."""
    marker = marker_path(target)
    return bool(marker and marker.is_file())


def with_interruption(differences: list[Difference], stack: Stack, target: probe.TargetEnv) -> list[Difference]:
    """After an interrupted install every pinned package is reinstalled, satisfied or not."""
    named = {d.package for d in differences}
    return differences + [
        Difference(p, wanted_spec(p, stack.versions[p], stack.flavor), target.version_of(p),
                   "an earlier install into this environment was interrupted")
        for p in PACKAGES
        if p not in named
    ]  # fmt: skip


def _free_bytes(path: Path) -> int:
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_disk(need: int, places: Sequence[Path]) -> None:
    for place in places:
        free = _free_bytes(place)
        if free < need:
            raise EnvironmentProblem(
                f"{place} has {free / GIB:.1f} GiB free; installing the stack needs about {need / GIB:.0f} GiB",
                "free disk space (or point SAGE_TASKS_CACHE/UV_CACHE_DIR elsewhere) and run again; nothing was changed",
            )


@dataclass(frozen=True)
class PinResult:
    stack: Stack
    differences: tuple[Difference, ...]
    command: tuple[str, ...] | None
    installed: Mapping[str, str | None]
    changed: bool
    installer: Mapping[str, object] | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "stack": self.stack.to_dict(),
            "differences": [d.to_dict() for d in self.differences],
            "command": list(self.command) if self.command else None,
            "installed": dict(self.installed),
            "changed": self.changed,
            "installer": dict(self.installer) if self.installer else None,
        }


def commands(
    choice: installers.Choice,
    python: str,
    differences: Sequence[Difference],
    stack: Stack,
    env: Mapping[str, str],
    folder: Path,
    *,
    reinstall: bool,
    quiet: bool,
) -> list[list[str]]:
    """The installer processes, in order: uv resolves and downloads everything before it touches
    the environment; with pip, ``pip download`` first, then an install from that folder only."""
    specs = [f"{d.package}=={d.wanted}" for d in differences]
    if choice.tool == "uv":
        assert choice.uv
        index_args = installers.uv_index_args(stack.index_url, choice.pip_settings, env)
        return [installers.uv_install_command(choice.uv, python, specs, index_args, reinstall=reinstall, quiet=quiet)]
    return [
        installers.pip_download_command(python, specs, str(folder), stack.index_url, quiet=quiet),
        installers.pip_install_command(python, specs, str(folder), reinstall=reinstall, quiet=quiet),
    ]


# the stream on which each installer draws its progress bar (uv: indicatif on stderr; pip: rich on stdout)
BAR_STREAM = {"uv": "stderr", "pip": "stdout"}


def _run_installer(
    argv: list[str], env: Mapping[str, str], hint: str, *, tool: str, progress: bool, log_dir: Path
) -> None:
    """Quiet (``--no-progress``, output captured) unless ``progress``: then the installer's bar
    stream goes to our terminal, so uv or pip draws bytes and rate itself, and the other stream
    is logged (and is the tail of the error if it fails)."""
    if not progress:
        runner.run(argv, env=env, error=EnvironmentProblem, hint=hint)
        return
    watch = time.perf_counter()

    def show(line: str) -> None:
        if line.strip():
            log.info("  %s", line.strip()[:200])

    runner.stream(argv, log_path=log_dir / f"pin-{int(time.time())}.log", env=env, on_line=show,
                  terminal=BAR_STREAM[tool], error=EnvironmentProblem, hint=hint)  # fmt: skip
    log.info("  installed in %.1f s", time.perf_counter() - watch)


def _joined(argvs: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """Several commands as one display line: ``a ... && b ...``."""
    return tuple(word for argv in argvs for word in [*argv, "&&"])[:-1]


def apply(
    stack: Stack,
    target: probe.TargetEnv,
    env: Mapping[str, str],
    *,
    check_only: bool = False,
    dry_run: bool = False,
    installer: str | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
    keep_installed: bool = False,
) -> PinResult:
    """Install what differs (uv, or pip as fallback), then read back and verify every pin.

    The environment is marked while the installer runs; a run killed half-way leaves the
    mark, and the next ``pin`` reinstalls the whole stack over whatever was left."""
    was_interrupted = interrupted(target)
    differences = diff(stack, target)
    if was_interrupted:
        differences = with_interruption(differences, stack, target)
    if keep_installed:  # --keep-stack: only what is missing, never a replacement
        kept = [d for d in differences if d.installed is not None]
        if kept:
            log.info("--keep-stack: keeping %s", ", ".join(f"{d.package} {d.installed}" for d in kept))
        differences = [d for d in differences if d.installed is None]
    else:
        for d in differences:
            if d.installed is not None and d.package == "torch":
                size = ""
                if not check_only:  # what the installer is about to download, asked of the index
                    size = ", " + stack_size.describe(
                        stack_size.download_size(stack.index_url, differences, target.tags)
                    )
                log.warning("pin replaces torch %s with %s%s (--keep-stack keeps it)", d.installed, d.wanted, size)
    installed = {p: target.version_of(p) for p in PACKAGES}
    if not differences:
        return PinResult(stack, (), None, installed, changed=False)
    if check_only:
        listing = "; ".join(f"{d.package}: {d.reason}" for d in differences)
        raise EnvironmentProblem(
            f"the stack in {target.python} differs from the pin: {listing}",
            "run `invoke pin` to install the pinned versions",
        )
    choice = installers.resolve(installer, target.python, env)
    cache = cache_dir or Path(tempfile.gettempdir()) / "sage-tasks"
    folder = cache / "pin-downloads" / hashlib.sha256(target.python.encode()).hexdigest()[:12]  # one per target
    argvs = commands(choice, target.python, differences, stack, env, folder, reinstall=was_interrupted,
                     quiet=not progress)  # fmt: skip
    if dry_run:
        return PinResult(
            stack, tuple(differences), _joined(argvs), installed, changed=False, installer=choice.to_dict()
        )
    marker = marker_path(target)
    places = [p for p in (marker.parent.parent if marker else None, cache) if p is not None]
    check_disk(disk_needed(differences), places)
    hint = f"check that {stack.index_url or 'the index'} is reachable and has these versions for this Python"
    run_env = installers.uv_env(choice.pip_settings, env) if choice.tool == "uv" else env
    logsetup.step(log, f"install {', '.join(d.package + '==' + d.wanted for d in differences)} with {choice.tool}")
    all_argvs = list(argvs)
    if choice.tool == "pip":  # download everything first: a failed download leaves the stack as it was
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        _run_installer(argvs[0], env, hint, tool="pip", progress=progress, log_dir=cache / "logs")
        argvs = argvs[1:]
    if marker:
        atomic.write(marker, json.dumps({"packages": [d.package for d in differences], "pid": os.getpid()}))
    for argv in argvs:
        _run_installer(argv, run_env, hint, tool=choice.tool, progress=progress, log_dir=cache / "logs")
    logsetup.end_step(log)
    after = probe.read_target(target.python, env=env)
    left = [d for d in diff(stack, after) if d.package in {x.package for x in differences}]
    if left:
        listing = "; ".join(f"{d.package}: {d.reason}" for d in left)
        raise EnvironmentProblem(
            f"after installing, the stack still differs: {listing}",
            "another constraint (pip config, PIP_CONSTRAINT) may be holding a version back",
        )
    if marker:
        marker.unlink(missing_ok=True)
    if choice.tool == "pip":
        shutil.rmtree(folder, ignore_errors=True)
    return PinResult(
        stack,
        tuple(differences),
        _joined(all_argvs),
        {p: after.version_of(p) for p in PACKAGES},
        changed=True,
        installer=choice.to_dict(),
    )
