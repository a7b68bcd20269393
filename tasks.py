"""sage-tasks: get a correct SageAttention wheel onto this machine, fast.

Each task resolves settings, calls one library function and prints its result; the work is in
``sage_tasks/``. Every task that reports has ``--json``. Run ``invoke --help TASK`` for flags.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invoke import Collection, Exit, task

# Only what every task needs is imported here; each task imports the rest itself, so that
# `invoke probe` does not pay for the build, store and Hub code.
from sage_tasks.core import log as logsetup
from sage_tasks.core import redaction, render, runner
from sage_tasks.core import settings as settings_mod
from sage_tasks.core.errors import ConfigError, EnvironmentProblem, Interrupted, SageTasksError

COMMON = {
    "python": "target interpreter (default: this one; PYTHON_BIN works too)",
    "recipe": "recipe name in manifests/recipes or a .toml path (default: sageattention-2.2.0)",
    "store": "local store directory (default: SAGE_STORE or ~/.local/share/sage-tasks/store)",
    "hub": "Hugging Face repo id to use as the store (default: HF_REPO_ID when set)",
    "json": "print one JSON record on stdout instead of tables (progress stays on stderr)",
    "verbose": "show debug output",
    "installer": "uv or pip for the torch stack (default: SAGE_INSTALLER, else uv when it can run)",
    "keep_stack": "never change an installed torch/torchvision/torchaudio/triton (SAGE_KEEP_STACK=1 too)",
}


def _help(*names: str, **extra: str) -> dict[str, str]:
    return {**{n: COMMON[n] for n in names}, **extra}


@contextmanager
def _guard(verbose: bool = False) -> Iterator[None]:
    """The one place where our errors become a one-line message and an exit code."""
    redaction.register_from_env(os.environ)
    logsetup.configure(verbose)
    try:
        yield
    except SageTasksError as e:
        raise Exit(redaction.redact(e.one_line()), code=int(e.code)) from e
    except runner.Interrupted as e:  # SIGTERM while a long command ran: it was stopped, with its tree
        problem = Interrupted(
            f"stopped by {e}; the running command and everything it started were ended",
            "run the command again when you are ready",
        )
        raise Exit(problem.one_line(), code=int(problem.code)) from e
    except OSError as e:  # a full disk or a file-size limit outside the places that expect it
        where = f" ({e.filename})" if e.filename else ""
        problem = EnvironmentProblem(f"{e.strerror or e}{where}", "free disk space or raise the limit, then run again")
        raise Exit(redaction.redact(problem.one_line()), code=int(problem.code)) from e


def _progress(json: bool) -> bool:
    """Installer progress on a terminal only: never in --json output or a CI log."""
    return not json and sys.stderr.isatty()


def _seed(text: object) -> int | None:
    if text in (None, ""):
        return None
    if not (str(text).isascii() and str(text).isdigit()):  # "²".isdigit() is True, int("²") is not
        raise ConfigError(f"--seed {text!r} is not a whole number", "pass the seed a kernel report printed")
    return int(str(text))


# The flags that feed settings (settings_mod.resolve); a task passes its own locals() and the
# ones it has are taken from this one table, so no task repeats `python=python, recipe=recipe...`.
SETTING_FLAGS = (
    "python",
    "recipe",
    "store",
    "hub",
    "stack",
    "arch",
    "source",
    "dist",
    "installer",
    "keep_stack",
    "timeout",
)


def _settings(task_args: dict[str, object], **extra: object) -> settings_mod.Settings:
    flags = {name: task_args[name] for name in SETTING_FLAGS if name in task_args} | extra
    return settings_mod.resolve({k: v for k, v in flags.items() if v not in (None, False)}, os.environ)


@task(
    help=_help(
        "python",
        "recipe",
        "json",
        "verbose",
        import_torch="also import torch in the target (seconds): CUDA availability and devices as torch sees them",
    )
)
def probe(c, python=None, recipe=None, import_torch=False, json=False, verbose=False):
    """Show GPUs, driver, nvcc, platform and the target's torch stack. Never needs a GPU."""
    from sage_tasks.stages import probe as probe_mod

    with _guard(verbose):
        s = _settings(locals())
        found = probe_mod.probe(s.python, s.env, [s.recipe.package], import_torch=import_torch)
        render.emit_json(found.to_dict()) if json else render.emit(render.probe_table(found))


@task(help=_help(
    "python", "recipe", "store", "hub", "json", "verbose", "installer", "keep_stack",
    check="only compare; exit 10 if anything differs, install nothing",
    dry_run="print the exact pip command, install nothing",
    stack="stack lock name in manifests/stacks or a .toml path (default: by GPU arch)",
    arch="GPU arch to pick the stack lock for when there is no GPU (e.g. 12.0)",
))  # fmt: skip
def pin(
    c,
    python=None,
    recipe=None,
    store=None,
    hub=None,
    stack=None,
    arch=None,
    check=False,
    dry_run=False,
    installer=None,
    keep_stack=False,
    json=False,
    verbose=False,
):
    """Install exactly the pinned torch/torchvision/torchaudio/triton (only what differs).

    Order: TORCH_VERSION... environment variables > the store's manifest for this machine >
    the committed lock. TORCH_INDEX_URL overrides the index.
    """
    from sage_tasks.stages import pipeline
    from sage_tasks.store import open_store

    with _guard(verbose):
        s = _settings(locals(), progress=_progress(json))
        found = pipeline.machine(s)
        index = open_store(s.store, s.env).read_index()
        result, _ = pipeline.pin(s, found, index, check_only=check, dry_run=dry_run)
        if json:
            return render.emit_json(result.to_dict())
        rows = [(p, v, result.stack.origins.get(p), result.installed.get(p)) for p, v in result.stack.versions.items()]
        render.emit(render.table(rows, ("package", "pinned", "from", "installed")))
        render.emit(f"index: {result.stack.index_url} ({result.stack.origins.get('index_url')})")
        if dry_run and result.command:
            render.emit(" ".join(result.command))
        elif not result.differences:
            render.emit("stack satisfied: nothing to install")


@task(help=_help(
    "python", "recipe", "store", "hub", "json", "verbose",
    arch="choose for this compute capability instead of the GPU's (e.g. 12.0)",
    dry_run="select and explain, download nothing",
    from_dist="choose among wheels built into this folder (by `invoke build`) instead of the store",
))  # fmt: skip
def fetch(
    c,
    python=None,
    recipe=None,
    store=None,
    hub=None,
    arch=None,
    from_dist=None,
    dry_run=False,
    json=False,
    verbose=False,
):
    """Install the stored wheel that fits this machine, as a transaction: hash and wheel checks,
    install, read-back (it must import), quick kernel check, then commit; any failure restores
    what was installed before.

    Every rejected candidate is listed with its reasons. WHEEL_URL (with WHEEL_SHA256 or a
    manifest of that file) installs a given wheel instead.
    """
    from sage_tasks.stages import pipeline
    from sage_tasks.store import open_store
    from sage_tasks.store.local import DistStore

    with _guard(verbose):
        s = _settings(locals(), progress=_progress(json))
        found = pipeline.machine(s)
        store_ = DistStore(Path(from_dist)) if from_dist else open_store(s.store, s.env)
        if dry_run:
            result, checked = pipeline.fetch_wheel(s, found, store_, store_.read_index(), dry_run=True), None
        else:
            result, checked = pipeline.fetch_checked(s, found, store_, store_.read_index())
        if json:
            return render.emit_json({**result.to_dict(), "test_kernel": checked.to_dict() if checked else None})
        verb = "would install" if dry_run else "installed"
        render.emit(f"{verb} {result.entry.wheel_file if result.entry else result.wheel} from {result.origin}")
        if checked is not None:
            render.emit(f"quick check: {checked.status} ({checked.verification.summary or ''})")


@task(help=_help(
    "python", "recipe", "json", "verbose",
    arch="compute capabilities to compile for, e.g. 12.0 or '9.0;12.0' (default: the GPUs')",
    source="local source checkout or tarball instead of cloning the pinned commit",
    dist="output folder for the wheel and its manifest (default: ./dist)",
    stack="stack lock to record the torch index from (default: by arch)",
    dry_run="show the build plan and stop",
    timeout="stop the compile (and every process it started) after this many seconds",
    allow_known_bad="build a recipe known to fail the kernel gate on these GPU archs anyway",
))  # fmt: skip
def build(
    c, python=None, recipe=None, arch=None, source=None, dist=None, stack=None, dry_run=False, timeout=None,
    allow_known_bad=False, json=False, verbose=False,
):  # fmt: skip
    """Build the recipe's wheel from source for the GPU's arch (or --arch, even without a GPU).

    MAX_JOBS / EXT_PARALLEL are sized from cores and free memory unless set. The full log is
    kept in a file; progress is shown while it runs. Writes DIST/<wheel> and DIST/<wheel>.json.
    """
    from sage_tasks.stages import build as build_mod
    from sage_tasks.stages import pipeline

    with _guard(verbose):
        s = _settings(locals())
        found = pipeline.machine(s)
        s, _ = pipeline.choose_recipe(s, found, allow_known_bad=allow_known_bad)
        index_url = pipeline.resolve_stack(s, found, None).index_url
        if dry_run:
            plan = build_mod.plan_build(s, found, index_url=index_url)
            return render.emit_json(plan.to_dict())
        result = pipeline.build_wheel(s, found, index_url)
        if json:
            return render.emit_json(result.to_dict())
        render.emit(
            f"wheel:    {result.wheel}\nmanifest: {result.manifest_path}\narchs:    {', '.join(result.entry.cuda_archs) or 'host only'}\nlog:      {result.log_path}"
        )


@task(help=_help(
    "python", "recipe", "json", "verbose",
    quick="a handful of cases in seconds (install-time check) instead of the full grid",
    manifest="wheel manifest to record the result in (default: the installed version's in ./dist)",
    dist="folder holding built wheels and manifests (default: ./dist)",
    report="also write the check's JSON report here",
    seed="the check's inputs from this seed (a failure prints its seed and the command that re-runs that case)",
))  # fmt: skip
def test_kernel(
    c,
    python=None,
    recipe=None,
    quick=False,
    manifest=None,
    dist=None,
    report=None,
    seed=None,
    json=False,
    verbose=False,
):
    """Prove on the GPU that the installed kernels compute the right numbers, and time them.

    Exit codes: 0 passed, 5 failed, 9 unverified (no GPU here). The verdict is recorded in the
    wheel's manifest.
    """
    from sage_tasks.stages import pipeline, verify

    with _guard(verbose):
        s = _settings(locals())
        found = pipeline.machine(s)
        with pipeline.changing(s, found, "test-kernel") as (_, found):  # an interrupted install is finished first
            result = verify.run_check(
                s,
                found,
                quick=quick,
                manifest_path=Path(manifest) if manifest else None,
                report_path=Path(report) if report else None,
                seed=_seed(seed),
            )
        if json:
            render.emit_json(result.to_dict())
        else:
            render.emit(f"{result.status}: {result.verification.summary or ''}\nreport: {result.report_path}")
        result.raise_for_status()


@task(help=_help(
    "recipe", "store", "hub", "json", "verbose",
    wheel="the wheel to publish (default: the newest built one in ./dist); its manifest sits beside it",
    dist="folder holding built wheels and manifests (default: ./dist)",
    allow_unverified="publish a wheel that has not passed a GPU kernel test (recorded as unverified)",
    replace="overwrite a published wheel of the same file name with different contents",
    all="publish every built wheel of the recipe in the dist folder",
    latest_unverified="let an unverified (never a failed) wheel become latest.json, the bash installer's pointer",
))  # fmt: skip
def publish(
    c,
    wheel=None,
    recipe=None,
    store=None,
    hub=None,
    dist=None,
    all=False,
    allow_unverified=False,
    replace=False,
    latest_unverified=False,
    json=False,
    verbose=False,
):
    """Put wheel + manifest + index + latest.json into the store in one atomic step."""
    from sage_tasks.stages import build as build_mod
    from sage_tasks.stages import publish as publish_mod
    from sage_tasks.store import open_store

    with _guard(verbose):
        s = _settings(locals())
        store_ = open_store(s.store, s.env)
        if all:
            results = publish_mod.publish_all(
                store_,
                s.dist_dir,
                s.recipe.package,
                allow_unverified=allow_unverified,
                replace=replace,
                latest_unverified=latest_unverified,
            )
        else:
            manifest_path = Path(f"{wheel}.json") if wheel else build_mod.latest_built(s.dist_dir, s.recipe.package)
            wheel_path = Path(wheel) if wheel else manifest_path.with_suffix("")
            results = [
                publish_mod.publish(
                    store_,
                    wheel_path,
                    manifest_path,
                    allow_unverified=allow_unverified,
                    replace=replace,
                    latest_unverified=latest_unverified,
                )
            ]
        if json:
            return render.emit_json(results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results])
        for result in results:
            render.emit(f"{result.outcome}: {result.entry.wheel_file} → {result.store}")
            if result.twin is not None:
                render.emit(f"twin for the bash installer: {result.twin.wheel_file}")
            render.emit(result.pointer)


@task(help=_help(
    "store", "hub", "json", "verbose",
    wheel="file name of the published wheel",
    reason="what is wrong with it (recorded with the time)",
))  # fmt: skip
def yank(c, wheel, reason, store=None, hub=None, json=False, verbose=False):
    """Quarantine a published wheel: fetch never selects it again (the file is kept)."""
    from sage_tasks.stages import publish as publish_mod
    from sage_tasks.store import open_store

    with _guard(verbose):
        s = _settings(locals())
        result = publish_mod.set_yanked(open_store(s.store, s.env), wheel, reason)
        render.emit_json(result.to_dict()) if json else render.emit(
            f"{'yanked' if result.changed else 'already yanked'}: {wheel} ({reason}); {result.pointer}"
        )


@task(help=_help("store", "hub", "json", "verbose", wheel="file name of the yanked wheel"))
def unyank(c, wheel, store=None, hub=None, json=False, verbose=False):
    """Reverse a yank: the wheel can be selected again."""
    from sage_tasks.stages import publish as publish_mod
    from sage_tasks.store import open_store

    with _guard(verbose):
        s = _settings(locals())
        result = publish_mod.set_yanked(open_store(s.store, s.env), wheel, None)
        render.emit_json(result.to_dict()) if json else render.emit(
            f"{'unyanked' if result.changed else 'was not yanked'}: {wheel}; {result.pointer}"
        )


@task(help=_help("store", "hub", "json", "verbose"))
def adopt(c, store=None, hub=None, json=False, verbose=False):
    """Import the bash installer's wheel (its latest.json) into a sage-tasks index in its folder.

    One commit; the installer's wheel and latest.json stay as they are, so machines still running
    the installer find what they found before. With the default REMOTE_DIR, the installer's
    folder (sageattention220) is used when the configured one is empty.
    """
    from sage_tasks.stages import publish as publish_mod
    from sage_tasks.store import open_store

    with _guard(verbose):
        s = _settings(locals())
        result = publish_mod.adopt(open_store(s.store, s.env))
        if json:
            return render.emit_json(result.to_dict())
        adopted = ", ".join(result.adopted) or "nothing new (already in the index)"
        pointer = result.latest or "nothing"
        render.emit(f"adopted: {adopted} → {result.store} ({result.wheels_in_index} wheel(s); latest.json: {pointer})")


@task(help=_help("recipe", dist="folder holding built wheels and manifests (default: ./dist)"))
def summary(c, recipe=None, dist=None):
    """Markdown table of the built wheels in dist/ and their kernel-test verdicts (CI job summaries)."""
    from sage_tasks.stages import publish as publish_mod
    from sage_tasks.store import manifest as manifest_mod

    with _guard():
        s = _settings(locals())
        entries = [
            manifest_mod.read_manifest_file(m) for _, m in publish_mod.built_wheels(s.dist_dir, s.recipe.package)
        ]
        render.emit(render.markdown_wheels(entries))


@task(help=_help("recipe", "verbose", dest="folder to export the source into (must not exist)"))
def source(c, dest, recipe=None, verbose=False):
    """Export the recipe's pinned source (clone at the pinned ref, commit verified) into DEST."""
    from sage_tasks.stages import build as build_mod

    with _guard(verbose):
        s = _settings(locals())
        commit = build_mod.export_source(s, Path(dest))
        render.emit(f"{s.recipe.source.repo} {s.recipe.source.ref} ({commit}) → {dest}")


@task(help=_help(
    "python", "recipe", "store", "hub", "json", "verbose", "installer", "keep_stack",
    arch="compute capability to build/choose for when there is no GPU (e.g. 12.0)",
    source="local source checkout or tarball for the build (default: clone the pinned commit)",
    dist="folder for built wheels (default: ./dist)",
    stack="stack lock to pin (default: by GPU arch)",
    dry_run="show what would happen (probe and selection run; nothing is installed or built)",
    allow_unverified="on a machine without a GPU, publish the built wheel as unverified",
    report="also write the run report (JSON) to this file",
    allow_known_bad="build a recipe known to fail the kernel gate on this GPU's arch anyway (the gate still runs)",
    timeout="on a miss, stop the compile (and every process it started) after this many seconds",
))  # fmt: skip
def auto(
    c,
    python=None,
    recipe=None,
    store=None,
    hub=None,
    arch=None,
    source=None,
    dist=None,
    stack=None,
    dry_run=False,
    allow_unverified=False,
    report=None,
    installer=None,
    keep_stack=False,
    allow_known_bad=False,
    timeout=None,
    json=False,
    verbose=False,
):
    """probe → pin → fetch; on a miss: build → install → test-kernel → publish. One summary table.

    Without --recipe, the default recipe not known to fail on this machine's GPU archs is used
    (on 9.0: sageattention-2.2.0-d1a57a5; on 12.0: the v2.2.0 release); the table says which and why.
    """
    from sage_tasks.stages import pipeline
    from sage_tasks.store.manifest import dumps, write_atomic

    with _guard(verbose):
        s = _settings(locals(), progress=_progress(json))
        run = pipeline.auto(s, dry_run=dry_run, allow_unverified=allow_unverified, allow_known_bad=allow_known_bad)
        if report:
            write_atomic(Path(report), dumps(run.to_dict()))
        render.emit_json(run.to_dict()) if json else render.emit(render.run_summary(run))
        if run.error is not None:
            raise run.error


@task(help=_help(
    "json", "verbose",
    wheel="the wheel file to inspect",
    cuobjdump="ask cuobjdump (CUDA toolkit) instead of reading the ELF fatbin directly",
))  # fmt: skip
def binaries(c, wheel, cuobjdump=False, json=False, verbose=False):
    """List the GPU machine code (SASS) and PTX each compiled extension of a wheel carries."""
    from sage_tasks.wheel import binaries as binaries_mod

    with _guard(verbose):
        listing = binaries_mod.list_wheel(Path(wheel), prefer_cuobjdump=cuobjdump)
        if json:
            return render.emit_json(listing)
        rows = [(so, " ".join(a["sass"]) or "-", " ".join(a["ptx"]) or "-") for so, a in listing.items()]
        render.emit(render.table(rows, ("extension", "SASS", "PTX")))


@task(help=_help("hub", "json", "verbose", dry_run="say what would be created or changed, change nothing"))
def init_hf(c, hub=None, dry_run=False, json=False, verbose=False):
    """Create (if missing) and check the Hugging Face Hub repo used as the store."""
    from sage_tasks.stages import pipeline

    with _guard(verbose):
        s = _settings(locals())
        result = pipeline.init_hub(s, dry_run=dry_run)
        render.emit_json(result) if json else render.emit(render.table(list(result.items())))


ns = Collection(
    probe, pin, fetch, build, test_kernel, publish, auto, init_hf, binaries, summary, source, yank, unyank, adopt
)
ns.configure({"run": {"echo": True}})
