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
from urllib.parse import urlsplit

from ..core import download
from ..core import log as logsetup
from ..core import recipe as recipe_mod
from ..core.errors import ConfigError, NoMatchError, SageTasksError
from ..core.settings import Settings
from ..environment import install
from ..store import Store, open_store
from ..store.manifest import Index, WheelManifest
from . import build, fetch, plan, probe, selection, stack, verify
from .probe import Machine
from .publish import publish

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
    resolved = stack.resolve(settings.env, entry, lock)
    if resolved.index_url:  # checked before pip or uv sees it: a store is not trusted with the scheme
        origin = resolved.origins.get("index_url", "")
        from_store = origin.startswith("store")
        download.check_url(resolved.index_url, settings.allow_http or not from_store, f"the torch index from {origin}")
    return resolved


@contextmanager
def changing(
    settings: Settings, found: Machine, command: str, *, dry_run: bool = False
) -> Iterator[tuple[install.Change | None, Machine]]:
    """The target environment's lock for one stage, after finishing an install a dead process
    left (the target is read again when that changed it). A dry run changes nothing: no lock."""
    if dry_run:
        yield None, found
        return
    with install.Change(found.target, settings.env, command=command) as change:
        if change.recovered:
            found = dataclasses.replace(
                found, target=probe.read_target(found.target.python, [settings.recipe.package], env=settings.env)
            )
        yield change, found


def pin(
    settings: Settings, found: Machine, index: Index | None, *, check_only: bool = False, dry_run: bool = False
) -> tuple[stack.PinResult, Machine]:
    """``_pin`` under the environment's lock (the same lock every install takes)."""
    with changing(settings, found, "pin", dry_run=dry_run or check_only) as (_, found):
        return _pin(settings, found, index, check_only=check_only, dry_run=dry_run)


def _pin(
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
    settings: Settings,
    found: Machine,
    store: Store,
    index: Index,
    *,
    dry_run: bool = False,
    change: install.Change | None = None,
) -> fetch.FetchResult:
    if settings.wheel_url:
        return fetch.fetch_from_url(settings, found, index, dry_run=dry_run, change=change)
    return fetch.fetch_from_store(settings, found, store, index, dry_run=dry_run, change=change)


def fetch_checked(
    settings: Settings, found: Machine, store: Store, index: Index
) -> tuple[fetch.FetchResult, verify.CheckResult]:
    """``invoke fetch``: install, read back, quick check, then commit. A failed check (or any
    error) rolls the install back; unverified (no GPU here) commits with a warning."""
    with changing(settings, found, "fetch") as (change, found):
        fetched = fetch_wheel(settings, found, store, index, change=change)
        assert change is not None and fetched.target is not None
        checked = verify.run_check(settings, dataclasses.replace(found, target=fetched.target), quick=True)
        if checked.status == "failed":
            checked.raise_for_status()
        change.commit(unverified=checked.status == "unverified")
    return fetched, checked


def build_wheel(settings: Settings, found: Machine, index_url: str | None) -> build.BuildResult:
    """Plan and build. The target's lock is taken first (an install a dead process left is
    finished before anything is decided from the target) and held through the build only when
    it installs missing build requirements into the target."""
    with changing(settings, found, "build") as (_, found):
        plan = build.plan_build(settings, found, index_url=index_url)
        if plan.missing_requires:
            return build.execute(plan, settings.env)
    return build.execute(plan, settings.env)


def init_hub(settings: Settings, *, dry_run: bool = False) -> dict[str, Any]:
    if settings.store.kind != "hub":
        raise ConfigError(
            "init-hf needs a Hugging Face Hub store",
            "set HF_REPO_ID (and HF_TOKEN) or pass --hub NAMESPACE/NAME",
        )
    from ..store.hub_init import init_repo

    return init_repo(settings.store, settings.env, dry_run=dry_run)


def choose_recipe(settings: Settings, found: Machine, *, allow_known_bad: bool = False) -> tuple[Settings, str]:
    """The recipe to use on this machine and why: an explicit one unless it is known to fail on
    an arch present or targeted (then only with ``allow_known_bad``); else the first default
    recipe not known to fail on any of them (``recipe.choose``)."""
    ccs = tuple(dict.fromkeys((*settings.arch, *found.compute_capabilities)))
    overridden = settings.recipe.source.commit is None  # SAGE_SOURCE_REPO/REF: the user's source
    if settings.recipe_origin != "default" or overridden or not settings.default_recipes:
        chosen, why = recipe_mod.choose(settings.recipe, [], ccs, allow_known_bad=allow_known_bad)
    else:
        defaults = [recipe_mod.load_recipe(name, settings.manifests_dir) for name in settings.default_recipes]
        chosen, why = recipe_mod.choose(None, defaults, ccs, allow_known_bad=allow_known_bad)
    if chosen.name != settings.recipe.name:
        chosen.check_archs(settings.arch)
        settings = dataclasses.replace(settings, recipe=chosen)
    log.info("recipe: %s", why)
    return settings, why


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


def auto(
    settings: Settings, *, dry_run: bool = False, allow_unverified: bool = False, allow_known_bad: bool = False
) -> RunReport:
    """probe → pin → fetch; on a miss build → install → test-kernel → publish. Our errors do
    not escape: the report carries them, so the summary table is printed either way."""
    report = RunReport(dry_run=dry_run)
    try:
        _auto(settings, report, dry_run=dry_run, allow_unverified=allow_unverified, allow_known_bad=allow_known_bad)
    except SageTasksError as e:
        report.error = e
    return report


def _auto(
    settings: Settings, report: RunReport, *, dry_run: bool, allow_unverified: bool, allow_known_bad: bool = False
) -> None:
    with report.stage("probe") as rec:
        found = machine(settings)
        report.machine = found.to_dict()
        gpus = ", ".join(f"{g.name} ({g.compute_capability})" for g in found.gpus) or "no GPU"
        rec.detail = f"{gpus}; torch {found.target.version_of('torch') or 'absent'}"
        settings, why = choose_recipe(settings, found, allow_known_bad=allow_known_bad)
        report.result["recipe"] = {"name": settings.recipe.name, "why": why}
        rec.detail += f"; recipe {why}"
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
            if pinned.stack.index_url:  # the index host that pip or uv will ask
                rec.detail += f" from {urlsplit(pinned.stack.index_url).netloc or pinned.stack.index_url}"
        else:
            rec.outcome, rec.detail = "satisfied", ", ".join(f"{k} {v}" for k, v in pinned.installed.items())
    with _changing(settings, found, report, dry_run=dry_run) as (change, found):
        with report.stage("fetch") as rec:
            try:
                fetched = fetch_wheel(settings, found, store, index, dry_run=dry_run, change=change)
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
                    settings,
                    dataclasses.replace(found, target=fetched.target),
                    report,
                    quick=True,
                    fatal_unverified=False,
                    change=change,
                )
            return
    _build_path(
        settings, found, store, report, pinned.stack.index_url, dry_run=dry_run, allow_unverified=allow_unverified
    )


@contextmanager
def _changing(
    settings: Settings, found: Machine, report: RunReport, *, dry_run: bool = False
) -> Iterator[tuple[install.Change | None, Machine]]:
    """``changing`` for auto: what recovery did and what a rollback restored go into the report."""
    change = None
    try:
        with changing(settings, found, "auto", dry_run=dry_run) as (change, found):
            yield change, found
    finally:
        if change is not None and change.recovered:
            report.result["recovered"] = change.recovered
        if change is not None and change.restored:
            report.result["restored"] = change.restored


def _check(
    settings: Settings,
    found: Machine,
    report: RunReport,
    *,
    quick: bool,
    fatal_unverified: bool,
    change: install.Change | None = None,
) -> verify.CheckResult:
    """The numerical check; it passing (or being unverified: no GPU here) commits ``change``."""
    with report.stage("test-kernel" + (" --quick" if quick else "")) as rec:
        checked = verify.run_check(settings, found, quick=quick)
        report.result["test_kernel"] = checked.to_dict()
        rec.outcome, rec.detail = checked.status, checked.verification.summary or ""
        if change is not None and checked.status != "failed":
            change.commit(unverified=checked.status == "unverified")
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
    with _changing(settings, found, report) as (change, found):
        assert change is not None
        with report.stage("install") as rec:
            after = fetch.install(change, built.wheel, built.entry.version, settings.recipe.package)
            rec.detail = str(after.version_of(settings.recipe.package))
        _check(
            settings,
            dataclasses.replace(found, target=after),
            report,
            quick=False,
            fatal_unverified=not allow_unverified,
            change=change,
        )
    with report.stage("publish") as rec:
        published = publish(store, built.wheel, built.manifest_path, allow_unverified=allow_unverified)
        report.result["publish"] = published.to_dict()
        rec.outcome, rec.detail = published.outcome, f"{published.entry.wheel_file} → {published.store}"
