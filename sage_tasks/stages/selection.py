"""Which stored wheel fits a machine (pure). Every rejected candidate carries its reasons.

A wheel fits when all of these hold (DESIGN.md's variant key):
package and version (and the recipe's commit); a wheel tag the target interpreter accepts;
the same torch (public version and CUDA) and C++11 ABI; machine code for every GPU's compute
capability; a driver new enough for torch's CUDA; not yanked; not failed. Verified wheels are
preferred over unverified ones, then the newest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..core import archs
from ..store.manifest import INSTALLER_MIN_CUDA, WheelManifest


@dataclass(frozen=True)
class Want:
    package: str
    version: str
    tags: frozenset[str]
    torch_version: str | None
    torch_cuda: str | None = None
    torch_cxx11_abi: bool | None = None
    commit: str | None = None
    ccs: tuple[str, ...] = ()
    driver_cuda: str | None = None
    needs_archs: bool = True
    check_torch: bool = True

    def to_dict(self) -> dict[str, object]:
        return {
            "package": self.package,
            "version": self.version,
            "python_tags": sorted({t.split("-")[0] for t in self.tags})[:4],
            "torch_version": self.torch_version,
            "torch_cuda": self.torch_cuda,
            "torch_cxx11_abi": self.torch_cxx11_abi,
            "commit": self.commit,
            "compute_capabilities": list(self.ccs),
            "driver_cuda": self.driver_cuda,
        }


@dataclass(frozen=True)
class Rejection:
    wheel_file: str
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"wheel_file": self.wheel_file, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Selection:
    chosen: WheelManifest | None
    accepted: tuple[WheelManifest, ...]
    rejected: tuple[Rejection, ...]
    notes: tuple[str, ...] = ()  # one line per accepted wheel that fit only by an assumption
    unproven: str | None = None  # the chosen wheel has no passing kernel test on this machine's arch

    def to_dict(self) -> dict[str, object]:
        return {
            "chosen": self.chosen.wheel_file if self.chosen else None,
            "accepted": [w.wheel_file for w in self.accepted],
            "rejected": [r.to_dict() for r in self.rejected],
            "notes": list(self.notes),
            "unproven": self.unproven,
        }


def _public(version: str | None) -> str | None:
    if not version:
        return None
    try:
        return Version(version).public
    except InvalidVersion:
        return version


def _wheel_tags(entry: WheelManifest) -> set[str]:
    return {str(t) for t in parse_wheel_filename(entry.wheel_file)[3]}


def reasons_against(entry: WheelManifest, want: Want) -> list[str]:
    """Why ``entry`` does not fit (empty when it does)."""
    reasons: list[str] = []
    if canonicalize_name(entry.package) != canonicalize_name(want.package):
        reasons.append(f"package {entry.package}, not {want.package}")
    if _public(entry.version) != _public(want.version):
        reasons.append(f"version {_public(entry.version)}, not {_public(want.version)}")
    commit = entry.source.get("commit")
    if want.commit and commit and commit != want.commit:
        reasons.append(f"built from commit {commit[:12]}, the recipe pins {want.commit[:12]}")
    if not _wheel_tags(entry) & want.tags:
        python = sorted({t.split("-")[0] for t in want.tags if t.startswith("cp")})[:1]
        reasons.append(
            f"wheel tag {entry.python_tag}-{entry.abi_tag}-{entry.platform_tag} does not fit this "
            f"interpreter ({python[0] if python else 'unknown'})"
        )
    if want.check_torch:
        reasons += _torch_reasons(entry, want)
    if want.needs_archs:
        reasons += _arch_reasons(entry, want)
    if archs.driver_supports(want.driver_cuda, entry.torch_cuda) is False:
        reasons.append(f"the driver supports CUDA {want.driver_cuda}, the wheel's torch needs CUDA {entry.torch_cuda}")
    if entry.yanked:
        reasons.append(f"yanked at {entry.yanked.get('at')}: {entry.yanked.get('reason')}")
    if entry.verification.status == "failed":
        gpu = entry.verification.gpu or "a GPU"
        reasons.append(f"failed its kernel test on {gpu}: {entry.verification.summary or 'see its manifest'}")
    return reasons


def _torch_reasons(entry: WheelManifest, want: Want) -> list[str]:
    if want.torch_version is None:
        return ["torch is not installed in the target interpreter (run `invoke pin` first)"]
    reasons = []
    if _public(entry.torch_version) != _public(want.torch_version):
        reasons.append(f"built against torch {entry.torch_version}, this environment has torch {want.torch_version}")
    if (entry.torch_cuda or None) != (want.torch_cuda or None) and not unknown_cuda_fits(entry, want):
        reasons.append(f"built for torch with CUDA {entry.torch_cuda}, installed torch has CUDA {want.torch_cuda}")
    if (
        entry.torch_cxx11_abi is not None
        and want.torch_cxx11_abi is not None
        and entry.torch_cxx11_abi != want.torch_cxx11_abi
    ):
        reasons.append(
            f"C++11 ABI {int(entry.torch_cxx11_abi)} in the wheel, {int(want.torch_cxx11_abi)} in installed torch"
        )
    return reasons


def unknown_cuda_fits(entry: WheelManifest, want: Want) -> bool:
    """A bash-installer wheel whose torch CUDA nobody recorded (plain torch version, no index URL,
    no ``required_min_cuda``) fits a torch of the same public version whose CUDA has the same
    major as, and is at least, the installer's minimum (12.8)."""
    if not entry.legacy or entry.torch_cuda or not want.torch_cuda:
        return False
    if _public(entry.torch_version) != _public(want.torch_version):
        return False
    have, least = archs.cuda_tuple(want.torch_cuda), archs.cuda_tuple(INSTALLER_MIN_CUDA)
    return have[0] == least[0] and have >= least


def _arch_reasons(entry: WheelManifest, want: Want) -> list[str]:
    if not want.ccs:
        return ["no GPU seen to match its archs against (pass --arch to choose for another GPU)"]
    have = set(entry.cuda_archs)
    lacking = [cc for cc in want.ccs if not archs.satisfies(have, cc)]
    if lacking:
        carried = ", ".join(sorted(have)) or "none"
        return [f"no machine code for compute capability {', '.join(lacking)} (wheel carries {carried})"]
    return []


def _rank(entry: WheelManifest) -> tuple[int, int, str, int, Version, str]:
    # a labelled wheel before its plain-version twin (same binaries; the twin is for the installer);
    # two published within the same second (created_at has seconds): the higher version, then the
    # name, so that the choice never depends on the order of the index
    try:
        version = Version(entry.version)
    except InvalidVersion:
        version = Version("0")
    passed, modern, twin = int(entry.verification.passed), int(not entry.legacy), int(entry.twin_of is None)
    return (passed, modern, entry.created_at, twin, version, entry.wheel_file)


def select_wheel(entries: Iterable[WheelManifest], want: Want) -> Selection:
    accepted, rejected = [], []
    for entry in entries:
        reasons = reasons_against(entry, want)
        if reasons:
            rejected.append(Rejection(entry.wheel_file, tuple(reasons)))
        else:
            accepted.append(entry)
    accepted.sort(key=lambda e: (proof_gap(e, want.ccs) is None, *_rank(e)), reverse=True)
    notes = tuple(
        f"{e.wheel_file}: the bash installer did not record its torch's CUDA; accepted because torch "
        f"{want.torch_version} (CUDA {want.torch_cuda}: same major, at least {INSTALLER_MIN_CUDA}) is installed"
        for e in accepted
        if want.check_torch and unknown_cuda_fits(e, want)
    )
    chosen = accepted[0] if accepted else None
    gap = proof_gap(chosen, want.ccs) if chosen is not None and want.needs_archs else None
    return Selection(chosen, tuple(accepted), tuple(rejected), notes, gap)


def proof_gap(entry: WheelManifest, ccs: tuple[str, ...]) -> str | None:
    """One line when a GPU arch of this machine has no passing kernel test of ``entry``
    ("built for 8.9 but only proven on 12.0"), else None."""
    proven = entry.verification.proven_on()
    missing = [archs.base_arch(cc) for cc in ccs if archs.base_arch(cc) not in proven]
    if not missing:
        return None
    where = f"only proven on {', '.join(proven)}" if proven else "not proven on any GPU (unverified)"
    return f"{entry.wheel_file} is built for {', '.join(missing)} but {where}"
