"""What this machine has: GPUs, driver, nvcc, platform, and the target Python environment.

Parsers are pure functions over the text each tool prints (tested on real captures); ``probe``
runs the tools concurrently through ``runner`` and returns one ``Machine`` record. Nothing here
imports torch: the target's facts are read from installed files by ``_target_facts``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import re
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from packaging import tags as pkg_tags

from ..core import locations, runner
from ..core.errors import EnvironmentProblem, SageTasksError
from ..environment import scripts
from ..target import facts as _target_facts

log = logging.getLogger(__name__)

GPU_QUERY_FIELDS = ("index", "name", "compute_cap", "driver_version", "memory.total")


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: str | None
    memory_mib: int | None = None


@dataclass(frozen=True)
class Program:
    path: str
    version: str
    full_version: str | None = None


@dataclass(frozen=True)
class TargetEnv:
    python: str
    version: str
    implementation: str
    tags: tuple[str, ...]
    packages: Mapping[str, str | None]
    torch_cuda: str | None = None
    torch_cxx11_abi: bool | None = None
    torch_cxx11_abi_source: str | None = None
    torch_imported: Mapping[str, object] | None = None
    paths: Mapping[str, str] = field(default_factory=dict)
    installs: Mapping[str, Mapping[str, object] | None] = field(default_factory=dict)

    @property
    def python_tag(self) -> str:
        return self.tags[0].split("-")[0] if self.tags else ""

    def version_of(self, name: str) -> str | None:
        return self.packages.get(name)


@dataclass(frozen=True)
class Machine:
    gpus: tuple[Gpu, ...]
    driver_version: str | None
    driver_cuda: str | None
    nvcc: Program | None
    system: str
    arch: str
    libc: str | None
    kernel: str
    cpu_count: int
    mem_total_mib: int | None
    mem_available_mib: int | None
    target: TargetEnv
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    unfinished_install: Mapping[str, object] | None = None  # a journal a dead (or running) install left

    @property
    def compute_capabilities(self) -> tuple[str, ...]:
        seen = [g.compute_capability for g in self.gpus if g.compute_capability]
        return tuple(dict.fromkeys(seen))

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["target"]["packages"] = dict(self.target.packages)
        data["target"].pop("installs", None)  # file lists: for the installer, not for reports
        data["target"]["python_tag"] = self.target.python_tag
        data["compute_capabilities"] = list(self.compute_capabilities)
        return data


# ---------------------------------------------------------------- parsers (pure)


def _int_or_none(text: str) -> int | None:
    match = re.match(r"\s*(\d+)", text or "")
    return int(match.group(1)) if match else None


def _query_rows(text: str) -> tuple[list[str] | None, list[list[str]]]:
    """``nvidia-smi --query-gpu ... --format=csv`` output as (column names from its header line, or
    None without one; the data rows). ``memory.total [MiB]`` is named ``memory.total``."""
    rows = [r for r in csv.reader(io.StringIO(text.strip()), skipinitialspace=True) if r]
    if rows and "name" in (names := [c.strip().split(" [")[0] for c in rows[0]]):
        return names, rows[1:]
    return None, rows


def parse_gpu_query(text: str, columns: Sequence[str] | None = None) -> list[Gpu]:
    """Parse ``nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]`` output.

    With a header line the columns are read from it (``memory.total [MiB]`` works too);
    without one, ``columns`` names them in order.
    """
    header, rows = _query_rows(text)
    if not header and not rows:
        return []
    if header:
        columns = header
    elif columns is None:
        raise ValueError("nvidia-smi output without a header needs the column names")
    gpus = []
    for position, row in enumerate(rows):
        values = dict(zip(columns, (c.strip() for c in row), strict=False))
        cc = values.get("compute_cap")
        if cc in (None, "", "[N/A]", "N/A"):
            cc = None
        index = _int_or_none(values.get("index", ""))
        gpus.append(
            Gpu(
                index=position if index is None else index,
                name=values.get("name", ""),
                compute_capability=cc,
                memory_mib=_int_or_none(values.get("memory.total", "")),
            )
        )
    return gpus


def parse_gpu_query_drivers(text: str, columns: Sequence[str]) -> list[str]:
    header, rows = _query_rows(text)
    columns = header or columns
    if "driver_version" not in columns:
        return []
    at = list(columns).index("driver_version")
    return [row[at].strip() for row in rows if len(row) > at]


def parse_smi_banner(text: str) -> tuple[str | None, str | None]:
    """``(driver version, highest CUDA the driver supports)`` from plain ``nvidia-smi``."""
    driver = re.search(r"Driver Version:\s*([0-9.]+)", text)
    cuda = re.search(r"CUDA Version:\s*([0-9.]+)", text)
    return (driver.group(1) if driver else None, cuda.group(1) if cuda else None)


def parse_nvcc_version(text: str) -> tuple[str, str | None] | None:
    """``("13.0", "13.0.88")`` from ``nvcc --version``; None if it is not nvcc's answer."""
    release = re.search(r"release (\d+\.\d+)", text)
    if not release:
        return None
    full = re.search(r"\bV(\d+\.\d+\.\d+)", text)
    return release.group(1), full.group(1) if full else None


def parse_driver_version_file(text: str) -> str | None:
    """The kernel module's version from ``/proc/driver/nvidia/version`` or ``/sys/module/nvidia/version``."""
    match = re.search(r"Kernel Module(?: for \S+)?\s+([0-9]+\.[0-9]+(?:\.[0-9]+)?)", text)
    if match:
        return match.group(1)
    bare = re.search(r"^\s*([0-9]+\.[0-9]+(?:\.[0-9]+)?)\s*$", text, re.MULTILINE)
    return bare.group(1) if bare else None


def parse_meminfo(text: str) -> tuple[int | None, int | None]:
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        values[key.strip()] = _int_or_none(rest)
    total, avail = values.get("MemTotal"), values.get("MemAvailable")
    return (total // 1024 if total else None, avail // 1024 if avail else None)


def target_tags(facts: Mapping[str, object], same_interpreter: bool) -> tuple[str, ...]:
    """Wheel tags the target interpreter accepts, most specific first."""
    if same_interpreter:
        return tuple(str(t) for t in pkg_tags.sys_tags())
    major, minor = (int(v) for v in list(facts["version_info"])[:2])  # type: ignore[arg-type]
    platforms = list(pkg_tags.platform_tags())
    if facts.get("implementation") != "cpython":
        return tuple(str(t) for t in pkg_tags.compatible_tags((major, minor), platforms=platforms))
    suffix = "t" if facts.get("gil_disabled") else ""
    abis = [f"cp{major}{minor}{suffix}"]
    found = list(pkg_tags.cpython_tags((major, minor), abis=abis, platforms=platforms))
    found += list(pkg_tags.compatible_tags((major, minor), f"cp{major}{minor}", platforms))
    return tuple(dict.fromkeys(str(t) for t in found))


# ---------------------------------------------------------------- discovery (I/O)


def find_nvcc(env: Mapping[str, str]) -> str | None:
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = env.get(var)
        if home and Path(home, "bin", "nvcc").is_file():
            return str(Path(home, "bin", "nvcc"))
    on_path = runner.which("nvcc", env)
    if on_path:
        return on_path
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.is_file() else None


def _nvcc(env: Mapping[str, str]) -> Program | None:
    path = find_nvcc(env)
    if path is None:
        return None
    try:
        done = runner.run([path, "--version"], env=env, check=False, echo=False, timeout=60)
    except SageTasksError:  # not executable, or hanging: as good as absent
        return None
    parsed = parse_nvcc_version(done.stdout)
    if done.returncode != 0 or parsed is None:
        return None
    return Program(path=path, version=parsed[0], full_version=parsed[1])


def _gpus(env: Mapping[str, str]) -> tuple[list[Gpu], str | None, str | None, list[str]]:
    notes: list[str] = []
    smi = runner.which("nvidia-smi", env)
    if smi is None:
        notes.append("nvidia-smi not found: no NVIDIA driver visible")
        return [], _driver_from_files(), None, notes
    query = [smi, f"--query-gpu={','.join(GPU_QUERY_FIELDS)}", "--format=csv,noheader,nounits"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        fq = pool.submit(runner.run, query, env=env, check=False, echo=False, timeout=60)
        fb = pool.submit(runner.run, [smi], env=env, check=False, echo=False, timeout=60)
        answer, banner = fq.result(), fb.result()
    if answer.returncode != 0:
        first = (answer.stdout + answer.stderr).strip().splitlines()[:1]
        notes.append(f"nvidia-smi failed ({answer.returncode}): {first[0] if first else ''}".strip())
        return [], _driver_from_files(), None, notes
    gpus = parse_gpu_query(answer.stdout, GPU_QUERY_FIELDS)
    drivers = parse_gpu_query_drivers(answer.stdout, GPU_QUERY_FIELDS)
    driver, cuda = parse_smi_banner(banner.stdout) if banner.returncode == 0 else (None, None)
    return gpus, driver or (drivers[0] if drivers else None), cuda, notes


def _driver_from_files() -> str | None:
    for path in ("/sys/module/nvidia/version", "/proc/driver/nvidia/version"):
        try:
            return parse_driver_version_file(Path(path).read_text())
        except OSError:
            continue
    return None


def _memory() -> tuple[int | None, int | None]:
    try:
        return parse_meminfo(Path("/proc/meminfo").read_text())
    except OSError:
        return None, None


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def is_current_interpreter(python: str) -> bool:
    return os.path.abspath(python) == os.path.abspath(sys.executable)


def check_python(python: str) -> str:
    """The interpreter path, or a clear error if it does not exist or cannot run."""
    path = Path(python)
    if not path.is_absolute() and os.sep not in python:
        found = runner.which(python)
        if found is None:
            raise EnvironmentProblem(
                f"Python interpreter `{python}` is not on PATH",
                "pass --python with the path of an existing interpreter (e.g. a venv's bin/python)",
            )
        return found
    if not path.exists():
        raise EnvironmentProblem(
            f"Python interpreter {python} does not exist",
            "pass --python with the path of an existing interpreter (e.g. a venv's bin/python)",
        )
    if path.is_dir():
        inside = next((p for p in (path / "bin" / "python", path / "bin" / "python3") if p.is_file()), None)
        raise EnvironmentProblem(
            f"--python {python} is a directory, not an interpreter",
            f"pass --python {inside}" if inside else "pass the interpreter itself, e.g. VENV/bin/python",
        )
    if not path.is_file():
        raise EnvironmentProblem(f"{python} is not a regular file", "pass --python with a runnable interpreter")
    if not os.access(path, os.X_OK):
        raise EnvironmentProblem(f"{python} is not executable", "pass --python with a runnable interpreter")
    return os.path.abspath(python)


def facts_command(
    python: str, extra: Sequence[str], env: Mapping[str, str], import_torch: bool = False, imports: Sequence[str] = ()
) -> list[str]:
    """The command that runs ``_target_facts`` in ``python``; ``imports`` are imported after the facts are read."""
    args = [python, str(scripts.path("target_facts", locations.cache_dir(env))), *extra]
    if import_torch:
        args.append("--import-torch")
    return args + [f"--import={module}" for module in imports]


def parse_facts(stdout: str) -> dict[str, object] | None:
    """The JSON record ``_target_facts`` prints as its last line (None when there is none)."""
    lines = stdout.strip().splitlines()
    try:
        facts = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return facts if isinstance(facts, dict) else None


def target_facts(
    python: str, extra: Sequence[str] = (), import_torch: bool = False, env: Mapping[str, str] | None = None
) -> dict[str, object]:
    """Run ``_target_facts`` in the target interpreter (in-process when it is this one)."""
    if is_current_interpreter(python) and not import_torch:
        return _target_facts.collect(tuple(extra))
    env = os.environ if env is None else env
    done = runner.run(facts_command(python, extra, env, import_torch), env=env, check=False, echo=False, timeout=600)
    if done.returncode != 0:
        _refuse_if_too_old(python, env)  # an old Python may fail on the script itself: say which it is
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvironmentProblem(
            f"could not read the environment of {python}: {last}",
            "check that --python names a working CPython 3.9+ interpreter",
        )
    facts = parse_facts(done.stdout)
    if facts is None:
        raise EnvironmentProblem(f"{python} printed something unexpected while probed: {done.stdout.strip()[-200:]!r}")
    return facts


# runs on every Python from 2.7 on: the version, when the facts script cannot run there
_VERSION_ONLY = "import sys; sys.stdout.write('%d.%d.%d' % tuple(sys.version_info[:3]))"


def _too_old(python: str, version: object, major: int, minor: int) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"{python} is Python {version} (tag cp{major}{minor}); the target must be 3.9 or newer",
        "pass --python with a Python 3.9+ interpreter (e.g. a venv made with python3.12)",
    )


def _refuse_if_too_old(python: str, env: Mapping[str, str]) -> None:
    done = runner.run([python, "-c", _VERSION_ONLY], env=env, check=False, echo=False, timeout=60)
    parts = done.stdout.strip().split(".")
    if done.returncode == 0 and len(parts) == 3 and all(p.isascii() and p.isdigit() for p in parts):
        major, minor = int(parts[0]), int(parts[1])
        if (major, minor) < (3, 9):
            raise _too_old(python, done.stdout.strip(), major, minor)


def _check_facts(python: str, facts: object) -> None:
    """The target's answer is a whole record from a Python we can act on; else say which Python it is."""
    needed = ("version", "implementation", "version_info", "packages", "paths")
    info = facts.get("version_info") if isinstance(facts, dict) else None
    readable = isinstance(info, list) and len(info) >= 2 and all(isinstance(v, int) for v in info[:2])
    if readable and tuple(info[:2]) < (3, 9):  # type: ignore[index]
        raise _too_old(python, facts.get("version", "?"), info[0], info[1])  # type: ignore[union-attr,index]
    if not isinstance(facts, dict) or any(k not in facts for k in needed) or "purelib" not in (facts["paths"] or {}):
        raise EnvironmentProblem(
            f"{python} answered the probe with an incomplete record",
            "check that --python names a working CPython 3.9+ interpreter",
        )


def read_target(
    python: str, extra: Sequence[str] = (), import_torch: bool = False, env: Mapping[str, str] | None = None
) -> TargetEnv:
    python = check_python(python)
    return target_from_facts(python, target_facts(python, extra, import_torch, env))


def target_from_facts(python: str, facts: dict[str, object]) -> TargetEnv:
    """The ``TargetEnv`` of the record ``_target_facts`` printed for ``python``."""
    _check_facts(python, facts)
    torch = facts.get("torch") or {}
    assert isinstance(torch, dict)
    imported = facts.get("torch_imported")
    return TargetEnv(
        python=python,
        version=str(facts["version"]),
        implementation=str(facts["implementation"]),
        tags=target_tags(facts, is_current_interpreter(python)),
        packages=dict(facts["packages"]),  # type: ignore[arg-type]
        torch_cuda=torch.get("cuda"),
        torch_cxx11_abi=torch.get("cxx11_abi"),
        torch_cxx11_abi_source=torch.get("cxx11_abi_source"),
        torch_imported=imported if isinstance(imported, dict) else None,
        paths=dict(facts.get("paths") or {}),  # type: ignore[arg-type]
        installs=dict(facts.get("installs") or {}),  # type: ignore[arg-type]
    )


def probe(
    python: str,
    env: Mapping[str, str],
    extra_packages: Sequence[str] = (),
    import_torch: bool = False,
) -> Machine:
    """Look at the machine and the target interpreter; absent things are reported, not errors."""
    start = time.perf_counter()
    python = check_python(python)
    with ThreadPoolExecutor(max_workers=3) as pool:
        f_gpus = pool.submit(_gpus, env)
        f_nvcc = pool.submit(_nvcc, env)
        f_target = pool.submit(read_target, python, extra_packages, import_torch, env)
        try:
            gpus, driver, driver_cuda, notes = f_gpus.result()
        except SageTasksError as e:
            gpus, driver, driver_cuda, notes = [], None, None, [f"nvidia-smi: {e.message}"]
        nvcc = f_nvcc.result()
        target = f_target.result()
    if nvcc is None:
        notes.append("nvcc not found (CUDA_HOME, PATH, /usr/local/cuda): building is not possible here")
    if target.version_of("torch") is None:
        notes.append(f"torch is not installed in {python}")
    unfinished = unfinished_install(target)
    if unfinished:
        notes.append(str(unfinished["summary"]))
    total, available = _memory()
    return Machine(
        gpus=tuple(gpus),
        driver_version=driver,
        driver_cuda=driver_cuda,
        nvcc=nvcc,
        system=platform.system(),
        arch=platform.machine(),
        libc=" ".join(platform.libc_ver()).strip() or None,
        kernel=platform.release(),
        cpu_count=_cpu_count(),
        mem_total_mib=total,
        mem_available_mib=available,
        target=target,
        seconds=round(time.perf_counter() - start, 3),
        notes=tuple(notes),
        unfinished_install=unfinished,
    )


NEXT_COMMANDS = "`invoke fetch`, `auto`, `pin` or `test-kernel`"  # the commands that recover (install.Change)


def unfinished_install(target: TargetEnv) -> dict[str, object] | None:
    """An install journal in the target (read only: probe never recovers), whether its owner
    runs, and what the next command will do about it: what recovery itself would do or say."""
    if "purelib" not in target.paths:
        return None
    from ..core.errors import EnvironmentProblem
    from ..environment import envlock, transaction

    folder = envlock.state_dir(target.paths)
    try:
        journal = transaction.read_journal(folder)
    except EnvironmentProblem as refusal:  # recovery raises this very error: quote it, do not paraphrase
        return {
            "state": "unreadable",
            "detail": refusal.message,
            "owner_running": not envlock.is_free(folder),
            "summary": f"unfinished install with a journal that cannot be used; the next {NEXT_COMMANDS} "
            f"refuses to touch it: {refusal.one_line()}",
        }
    if journal is None:
        return None
    running = not envlock.is_free(folder)
    committed = journal.state == transaction.COMMITTED
    if running:  # a live owner may still commit (or finish): only say what happens if it dies first
        owner = f"PID {journal.pid} is still running it"
        next_step = (
            f"it is in progress; if that process ends without finishing it, the next {NEXT_COMMANDS} "
            "finishes it if it has been committed, or rolls it back if it is still open"
        )
    else:
        owner = "its process is gone"
        verb = "rolled forward" if committed else "rolled back"
        next_step = f"the next {NEXT_COMMANDS} finishes it (it will be {verb})"
    return {
        "state": journal.state,
        "change": journal.description,
        "pid": journal.pid,
        "restores": journal.restores,
        "journal": str(transaction.journal_path(folder, journal.state)),
        "owner_running": running,
        "summary": f"unfinished install ({journal.description}, {journal.state}): {owner}; {next_step}",
    }
