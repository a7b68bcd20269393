"""The stages with their inputs resolved, and ``auto``: a short explicit sequence of them.

probe ──► pin ──► fetch ──hit──► test-kernel --quick ──► done
                    └─miss─► build ──► install ──► test-kernel ──► publish ──► done
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import build, fetch, plan, probe, selection, stack, verify
from . import log as logsetup
from .errors import ConfigError, NoMatchError, SageTasksError
from .manifest import Index, WheelManifest
from .probe import Machine
from .publish import publish
from .settings import Settings
from .store import Store, open_store

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- stages


def machine(settings: Settings, import_torch: bool = False) -> Machine:
    return probe.probe(settings.python, settings.env, [settings.recipe.package], import_torch=import_torch)


def store_entry_for_variant(settings: Settings, found: Machine, index: Index) -> WheelManifest | None:
    """The best stored wheel for this machine, torch aside: its stack is the one to pin."""
    want = dataclasses.replace(fetch.want_for(settings, found), check_torch=False)
    return selection.select_wheel(index.wheels, want).chosen


def resolve_stack(settings: Settings, found: Machine, index: Index | None) -> stack.Stack:
    if settings.stack:
        lock = stack.load_lock(settings.stack, settings.manifests_dir)
    else:
        ccs = settings.arch or found.compute_capabilities
        lock = stack.lock_for_machine(ccs, settings.default_stack, settings.manifests_dir)
    entry = store_entry_for_variant(settings, found, index) if index is not None else None
    return stack.resolve(settings.env, entry, lock)


def pin(
    settings: Settings, found: Machine, index: Index | None, *, check_only: bool = False, dry_run: bool = False
) -> tuple[stack.PinResult, Machine]:
    pinned = resolve_stack(settings, found, index)
    result = stack.apply(
        pinned,
        found.target,
        settings.env,
        check_only=check_only,
        dry_run=dry_run,
        installer=settings.installer,
        cache_dir=settings.cache_dir,
        progress=settings.progress,
        keep_installed=settings.keep_stack,
    )
    if result.changed:
        target = probe.read_target(found.target.python, [settings.recipe.package], env=settings.env)
        found = dataclasses.replace(found, target=target)
    elif dry_run:
        found = dataclasses.replace(found, target=stack.as_if_installed(found.target, result.differences, pinned))
    return result, found


def fetch_wheel(
    settings: Settings, found: Machine, store: Store, index: Index, *, dry_run: bool = False
) -> fetch.FetchResult:
    if settings.wheel_url:
        return fetch.fetch_from_url(settings, found, index, dry_run=dry_run)
    return fetch.fetch_from_store(settings, found, store, index, dry_run=dry_run)


def build_wheel(settings: Settings, found: Machine, index_url: str | None) -> build.BuildResult:
    plan = build.plan_build(settings, found, index_url=index_url)
    return build.execute(plan, settings.env)


def init_hub(settings: Settings, *, dry_run: bool = False) -> dict[str, Any]:
    if settings.store.kind != "hub":
        raise ConfigError(
            "init-hf needs a Hugging Face Hub store",
            "set HF_REPO_ID (and HF_TOKEN) or pass --hub NAMESPACE/NAME",
        )
    from .store.hub import init_repo

    return init_repo(settings.store, settings.env, dry_run=dry_run)


# ---------------------------------------------------------------- auto


@dataclass
class StageRecord:
    stage: str
    outcome: str = ""
    seconds: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RunReport:
    stages: list[StageRecord] = field(default_factory=list)
    machine: dict[str, Any] | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: SageTasksError | None = None
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        return int(self.error.code) if self.error else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.error is None,
            "exit_code": self.exit_code,
            "error": self.error.one_line() if self.error else None,
            "dry_run": self.dry_run,
            "stages": [s.to_dict() for s in self.stages],
            "result": self.result,
            "machine": self.machine,
        }

    @contextmanager
    def stage(self, name: str) -> Iterator[StageRecord]:
        record = StageRecord(name)
        watch = logsetup.Stopwatch()
        self.stages.append(record)
        try:
            yield record
            record.outcome = record.outcome or "ok"
        except SageTasksError as e:
            record.outcome = record.outcome or "failed"
            record.detail = record.detail or e.message
            raise
        finally:
            record.seconds = watch.seconds


def auto(settings: Settings, *, dry_run: bool = False, allow_unverified: bool = False) -> RunReport:
    """probe → pin → fetch; on a miss build → install → test-kernel → publish. Our errors do
    not escape: the report carries them, so the summary table is printed either way."""
    report = RunReport(dry_run=dry_run)
    try:
        _auto(settings, report, dry_run=dry_run, allow_unverified=allow_unverified)
    except SageTasksError as e:
        report.error = e
    return report


def _auto(settings: Settings, report: RunReport, *, dry_run: bool, allow_unverified: bool) -> None:
    with report.stage("probe") as rec:
        found = machine(settings)
        report.machine = found.to_dict()
        gpus = ", ".join(f"{g.name} ({g.compute_capability})" for g in found.gpus) or "no GPU"
        rec.detail = f"{gpus}; torch {found.target.version_of('torch') or 'absent'}"
    store = open_store(settings.store, settings.env)
    with report.stage("index") as rec:
        index = store.read_index()
        rec.detail = f"{len(index.wheels)} wheel(s) in {store.description}"
    with report.stage("plan") as rec:  # the whole plan before the first change; refuse if it cannot succeed
        log.info("target: %s (%s)", found.target.python, settings.python_origin)
        planned = plan.compute(
            settings, found, index, resolve_stack(settings, found, index), allow_unverified=allow_unverified
        )
        report.result["plan"] = planned.to_dict()
        rec.outcome, rec.detail = planned.path, planned.summary
        if planned.problem is not None:
            rec.outcome = "refused"
            raise planned.problem
    with report.stage("pin") as rec:
        pinned, found = pin(settings, found, index, dry_run=dry_run)
        report.result["stack"] = pinned.to_dict()
        if pinned.differences:
            rec.outcome = "would install" if dry_run else "installed"
            rec.detail = ", ".join(f"{d.package}=={d.wanted}" for d in pinned.differences)
        else:
            rec.outcome, rec.detail = "satisfied", ", ".join(f"{k} {v}" for k, v in pinned.installed.items())
    with report.stage("fetch") as rec:
        try:
            fetched = fetch_wheel(settings, found, store, index, dry_run=dry_run)
        except NoMatchError as e:
            fetched = None
            rec.outcome, rec.detail = "miss", e.message
        else:
            rec.outcome = "would install" if dry_run else "hit"
            rec.detail = fetched.entry.wheel_file if fetched.entry else str(fetched.wheel)
            report.result["fetch"] = fetched.to_dict()
    if fetched is not None:
        if fetched.target is not None:
            _check(
                settings, dataclasses.replace(found, target=fetched.target), report, quick=True, fatal_unverified=False
            )
        return
    _build_path(
        settings, found, store, report, pinned.stack.index_url, dry_run=dry_run, allow_unverified=allow_unverified
    )


def _check(
    settings: Settings, found: Machine, report: RunReport, *, quick: bool, fatal_unverified: bool
) -> verify.CheckResult:
    with report.stage("test-kernel" + (" --quick" if quick else "")) as rec:
        checked = verify.run_check(settings, found, quick=quick)
        report.result["test_kernel"] = checked.to_dict()
        rec.outcome, rec.detail = checked.status, checked.verification.summary or ""
        if checked.status == "unverified" and not fatal_unverified:
            return checked
        checked.raise_for_status()
    return checked


def _build_path(
    settings: Settings,
    found: Machine,
    store: Store,
    report: RunReport,
    index_url: str | None,
    *,
    dry_run: bool,
    allow_unverified: bool,
) -> None:
    with report.stage("build") as rec:
        if dry_run:
            plan = build.plan_build(settings, found, index_url=index_url)
            report.result["build_plan"] = plan.to_dict()
            rec.outcome = "would build"
            rec.detail = (
                f"{settings.recipe.name} for {', '.join(plan.archs) or 'the host'}, MAX_JOBS={plan.parallel.max_jobs}"
            )
            for later in ("install", "test-kernel", "publish"):
                report.stages.append(StageRecord(later, "would run"))
            return
        built = build_wheel(settings, found, index_url)
        report.result["build"] = built.to_dict()
        rec.detail = f"{built.wheel.name}"
    with report.stage("install") as rec:
        after = fetch.install(found.target, built.wheel, settings.env, built.entry.version, settings.recipe.package)
        rec.detail = str(after.version_of(settings.recipe.package))
    _check(
        settings, dataclasses.replace(found, target=after), report, quick=False, fatal_unverified=not allow_unverified
    )
    with report.stage("publish") as rec:
        published = publish(store, built.wheel, built.manifest_path, allow_unverified=allow_unverified)
        report.result["publish"] = published.to_dict()
        rec.outcome, rec.detail = published.outcome, f"{published.entry.wheel_file} → {published.store}"
