"""test-kernel: run the recipe's check inside the target interpreter and record the verdict.

The check protocol (what a recipe's check program must do): it is started as
``python CHECK --report FILE [--quick]`` in the target interpreter, writes a JSON report to
FILE (``status``, ``gpu``, ``compute_capability``, ``summary``, ``checks``, ``speed``) and
exits 0 when every check passed, 1 when one failed, 2 when it could not run here (no GPU).
The verdict is written into the wheel's manifest as ``verification``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import archs, redaction, runner
from ..core import log as logsetup
from ..core.errors import EnvironmentProblem, IntegrityError, KernelTestError, UnverifiedError
from ..core.settings import Settings
from ..environment.install import installed_sha256
from ..store import manifest
from ..store.manifest import Verification
from .probe import Machine

log = logging.getLogger(__name__)

EXIT_PASSED, EXIT_FAILED, EXIT_NO_GPU = 0, 1, 2
CHECK_TIMEOUT_S = 1800


@dataclass(frozen=True)
class CheckResult:
    status: str
    verification: Verification
    report: dict[str, Any]
    report_path: Path
    manifest_path: Path | None
    installed_version: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "installed_version": self.installed_version,
            "summary": self.verification.summary,
            "report": str(self.report_path),
            "manifest": str(self.manifest_path) if self.manifest_path else None,
            "seconds": self.seconds,
            "checks": list(self.verification.checks),
            "speed": list(self.verification.speed),
        }

    def raise_for_status(self) -> None:
        if self.status == "failed":
            raise KernelTestError(
                f"{self.verification.summary or 'a check failed'} (report: {self.report_path})",
                "do not publish this wheel; the report names the kernel, inputs and errors",
            )
        if self.status == "unverified":
            raise UnverifiedError(
                f"{self.verification.summary or 'the check could not run here'}: the wheel is unverified",
                "run `invoke test-kernel` on a machine with the target GPU",
            )


def find_manifest(dist_dir: Path, package: str, sha256: str | None) -> Path | None:
    """The manifest in ``dist_dir`` of the very wheel file that is installed (by its sha256):
    builds of one variant share a version, so nothing weaker will do."""
    if not sha256:
        return None
    return next(
        (path for path, entry in manifest.built(dist_dir, package, strict=False) if entry.wheel_sha256 == sha256), None
    )


def keeps_full_verdict(old: Verification, new: Verification) -> bool:
    """A quick pass never overwrites a full-mode verdict (a quick failure does: it is news)."""
    return old.mode == "full" and old.status != "unverified" and new.mode == "quick" and new.status == "passed"


def _cc_of(binary_arch: str) -> str | None:
    try:
        kind, number, _ = archs.parse_binary_arch(binary_arch)
    except ValueError:
        return None
    return f"{number // 10}.{number % 10}" if kind == "sm" else None


def arch_verdicts(
    report: dict[str, Any],
    status: str,
    quick: bool,
    checked_at: str,
    wheel_archs: tuple[str, ...] = (),
    earlier: tuple[dict[str, Any], ...] = (),
) -> tuple[dict[str, Any], ...]:
    """One verdict per compute capability (pure): the check's own, one per arch it ran on; a
    wheel that failed before any GPU ran (it does not import) failed on every arch it carries;
    the wheel's other archs are "unverified". Earlier verdicts of other archs are kept; for the
    same arch the new one wins, except that "unverified" never erases a verdict and a quick
    pass never replaces a full-mode one."""
    mode = "quick" if quick else "full"
    new: dict[str, dict[str, Any]] = {}
    for item in report.get("archs") or ():
        if isinstance(item, dict) and item.get("status") in manifest.STATUSES and item.get("compute_capability"):
            cc = str(item["compute_capability"])
            new[cc] = {
                "compute_capability": cc,
                "status": item["status"],
                "gpu": str(item.get("gpu") or "")[:300] or None,
                "mode": mode,
                "checked_at": checked_at,
                "summary": str(item.get("summary") or "")[:2000] or None,
            }
    new = {cc: v for cc, v in new.items() if re.fullmatch(r"[0-9]{1,2}\.[0-9]", cc)}  # what the schema allows
    if (
        not new
        and status != "unverified"
        and re.fullmatch(r"[0-9]{1,2}\.[0-9]", str(report.get("compute_capability") or ""))
    ):  # a check without per-arch rows
        cc = str(report["compute_capability"])[:16]
        gpu = str(report.get("gpu") or "")[:300] or None
        new[cc] = {
            "compute_capability": cc,
            "status": status,
            "gpu": gpu,
            "mode": mode,
            "checked_at": checked_at,
            "summary": str(report.get("summary") or "")[:2000] or None,
        }
    carried = [cc for cc in (_cc_of(a) for a in wheel_archs) if cc]
    before_any_gpu = status == "failed" and not new  # e.g. the wheel does not import
    for cc in carried:
        state, why = (
            ("failed", report.get("summary") or "failed")
            if before_any_gpu
            else ("unverified", "no GPU of this arch here")
        )
        new.setdefault(
            cc,
            {
                "compute_capability": cc,
                "status": state,
                "gpu": None,
                "mode": mode,
                "checked_at": checked_at,
                "summary": str(why)[:2000],
            },
        )
    merged = {str(a.get("compute_capability")): dict(a) for a in earlier if isinstance(a, dict)}
    for cc, verdict in new.items():
        old = merged.get(cc)
        if old and old.get("status") != "unverified":
            if verdict["status"] == "unverified":
                continue
            if old.get("mode") == "full" and verdict["mode"] == "quick" and verdict["status"] == "passed":
                continue
        merged[cc] = verdict
    return tuple(merged[cc] for cc in sorted(merged, key=archs.cc_tuple))


def _compact(check: dict[str, Any]) -> dict[str, Any]:
    """A check as the manifest keeps it: the worst values, not where they were (the report has that)."""
    kept = {k: v for k, v in check.items() if k != "rerun"}
    for level in ("tile", "edge_tile", "head"):
        if isinstance(kept.get(level), dict):
            kept[level] = {k: v for k, v in kept[level].items() if k != "where"}
    if isinstance(kept.get("reasons"), list):
        kept["reasons"] = kept["reasons"][:1]
    return kept


def _verification(status: str, report: dict[str, Any], machine: Machine, quick: bool) -> Verification:
    def listed(key: str) -> tuple[dict[str, Any], ...]:
        value = report.get(key)
        return tuple(v for v in value if isinstance(v, dict)) if isinstance(value, list) else ()

    gpu = machine.gpus[0] if machine.gpus else None
    return Verification(
        status=status,
        mode="quick" if quick else "full",
        gpu=str(report.get("gpu") or (gpu.name if gpu else "")) or None,
        compute_capability=str(report.get("compute_capability") or (gpu.compute_capability if gpu else "")) or None,
        driver=machine.driver_version,
        checked_at=manifest.now(),
        summary=str(report.get("summary") or "")[:2000] or None,
        checks=tuple(_compact(c) for c in listed("checks")),
        speed=listed("speed"),
    )


def run_check(
    settings: Settings,
    machine: Machine,
    *,
    quick: bool = False,
    manifest_path: Path | None = None,
    report_path: Path | None = None,
    record: bool = True,
    seed: int | None = None,
) -> CheckResult:
    recipe = settings.recipe
    python = machine.target.python
    now = machine.target  # read with the recipe's package (probe's extra): installed version and origin
    installed = now.version_of(recipe.package)
    if installed is None:
        raise EnvironmentProblem(
            f"{recipe.package} is not installed in {python}",
            "install it first: `invoke fetch` or `invoke build` then install the wheel",
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    report_path = report_path or settings.cache_dir / "reports" / f"{recipe.package}-{installed}-{stamp}.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.unlink(missing_ok=True)
    watch = logsetup.Stopwatch()
    logsetup.step(log, f"test-kernel {'--quick ' if quick else ''}{recipe.package} {installed} in {python}")
    command = [*recipe.check.command(python, settings.cache_dir), "--report", str(report_path)] + (
        ["--quick"] if quick else []
    )
    if seed is not None:  # the same inputs again (a recipe's own check must accept --seed then)
        command += ["--seed", str(seed)]
    done = runner.run(command, env=redaction.without_secrets(settings.env), check=False, timeout=CHECK_TIMEOUT_S)
    for line in done.stdout.splitlines():
        log.info("  %s", line)
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        if not isinstance(report, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as e:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        report = {"status": "failed", "summary": f"the check wrote no report ({e}); exit {done.returncode}: {tail}"}
    status = {EXIT_PASSED: "passed", EXIT_FAILED: "failed", EXIT_NO_GPU: "unverified"}.get(done.returncode, "failed")
    if status == "passed" and report.get("status") != "passed":
        status = "failed"  # an exit code of 0 alone proves nothing
        report["summary"] = f"exit 0 but the report says {report.get('status')!r}"
    if done.returncode not in (EXIT_PASSED, EXIT_FAILED, EXIT_NO_GPU):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        report.setdefault("summary", f"the check crashed with exit {done.returncode}: {tail}")
    sha = installed_sha256(now, recipe.package)
    manifest_path = manifest_path or find_manifest(settings.dist_dir, recipe.package, sha)
    verification = _verification(status, report, machine, quick)
    entry = manifest.read_manifest_file(manifest_path) if manifest_path is not None else None
    verification = dataclasses.replace(
        verification,
        archs=arch_verdicts(
            report,
            status,
            quick,
            verification.checked_at or manifest.now(),
            entry.cuda_archs if entry else (),
            entry.verification.archs if entry else (),
        ),
    )
    if any(a["status"] == "failed" for a in verification.archs) and verification.status != "failed":
        verification = dataclasses.replace(verification, status="failed")  # failed on one arch is failed
    if record and entry is not None:
        if entry.version != installed or (sha and entry.wheel_sha256 != sha):
            raise IntegrityError(
                f"{manifest_path} describes {entry.wheel_file}, which is not what is installed ({installed})"
            )
        if keeps_full_verdict(entry.verification, verification):
            log.info("kept the full-mode verdict in %s (a quick pass adds nothing to it)", manifest_path)
        else:
            manifest.write_manifest_file(manifest_path, entry.replace(verification=verification))
            log.info("recorded %s in %s", status, manifest_path)
    elif record:
        log.info(
            "no manifest of the installed %s wheel in %s: the result is only reported",
            recipe.package,
            settings.dist_dir,
        )
    logsetup.end_step(log)
    return CheckResult(status, verification, report, report_path, manifest_path, installed, watch.seconds)
