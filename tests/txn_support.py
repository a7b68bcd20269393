"""Helpers for the transaction tests: wheels shaped like SageAttention's, hand-made zips (bombs,
broken data), a harness process that installs (and can be killed), and a judge that says whether
an environment holds exactly one installation, byte for byte, or is broken.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests import support

PACKAGE = "bigdemo"
SO_SUFFIX = ".cpython-311-x86_64-linux-gnu.so"


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(path: Path, members: dict[str, bytes], *, level: int = 6) -> Path:
    """A wheel holding ``members`` plus a RECORD listing each with its hash (members in order)."""
    info = next(n.split("/")[0] for n in members if n.split("/")[0].endswith(".dist-info"))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in members.items():
        writer.writerow((name, _hash(data), len(data)))
    writer.writerow((f"{info}/RECORD", "", ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, data in {**members, f"{info}/RECORD": record.getvalue().encode()}.items():
            zf.writestr(name, data)
    return path


def dist_info_files(name: str, version: str) -> dict[str, bytes]:
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    return {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: sage-tasks-tests\nRoot-Is-Purelib: false\nTag: py3-none-any\n",
    }


def big_wheel(dest: Path, version: str, *, seed: int, modules: range = range(1000), so_mb: int = 4) -> Path:
    """Shaped like the real SageAttention wheel: four incompressible ``.so`` files of ``so_mb`` MB
    (random bytes; nothing loads them) and a thousand small modules; ``__init__`` reports the
    version. Different seeds and module ranges make versions that overlap only partly."""
    members: dict[str, bytes] = {f"{PACKAGE}/__init__.py": f"__version__ = {version!r}\n".encode()}
    for i in modules:
        members[f"{PACKAGE}/ops/mod_{i:04d}.py"] = f"# {version}\nVALUE = {i * seed}\n".encode()
    for k in range(4):
        members[f"{PACKAGE}/_qattn_sm{80 + k}{SO_SUFFIX}"] = os.urandom(so_mb << 20)
    members.update(dist_info_files(PACKAGE, version))
    return write_wheel(dest / f"{PACKAGE}-{version}-py3-none-any.whl", members, level=1)


def wheel_record(wheel: Path) -> dict[str, str]:
    """A wheel's RECORD: member → hash (RECORD itself left out)."""
    with zipfile.ZipFile(wheel) as zf:
        info = next(n.split("/")[0] for n in zf.namelist() if n.split("/")[0].endswith(".dist-info"))
        rows = csv.reader(io.StringIO(zf.read(f"{info}/RECORD").decode()))
        return {r[0]: r[1] for r in rows if r and r[1]}


# ---------------------------------------------------------------- hand-made zips


def raw_zip(path: Path, members: list[tuple[str, bytes, int, int, int, int]]) -> Path:
    """A zip written byte by byte: (name bytes..., deflated data, crc, declared size, method, flags)."""
    out = io.BytesIO()
    central = []
    for name, data, crc, size, method, flags in members:
        raw_name = name.encode("utf-8", "surrogateescape") if isinstance(name, str) else name
        offset = out.tell()
        out.write(
            struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0, crc, len(data), size, len(raw_name), 0)
        )
        out.write(raw_name)
        out.write(data)
        fields = (0x02014B50, 20, 20, flags, method, 0, 0, crc, len(data), size, len(raw_name), 0, 0, 0, 0, 0o644 << 16, offset)  # fmt: skip
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", *fields) + raw_name)
    start = out.tell()
    for entry in central:
        out.write(entry)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), out.tell() - start, start, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())
    return path


def deflated_zeros(gigabytes: float) -> bytes:
    """A raw deflate stream of ``gigabytes`` of zeros, built from one flushed 1 MiB block repeated
    (a full flush resets the compressor, so every block compresses to the same bytes)."""
    block_c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = block_c.compress(bytes(1 << 20)) + block_c.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    return block * int(gigabytes * 1024) + end


def zip_bomb(dest: Path, *, lying: bool) -> Path:
    """A 2 MB sageattention-named wheel whose payload inflates to 2 GiB of zeros; ``lying``
    declares a tiny size in the headers (and RECORD), the honest one declares the truth."""
    name, version = "sageattention", "2.2.0"
    metadata = dist_info_files(name, version)
    payload = deflated_zeros(2)
    declared = 1000 if lying else 2 << 30
    info = f"{name}-{version}.dist-info"
    record_rows = [(n, _hash(d), len(d)) for n, d in metadata.items()]
    record_rows.append((f"{name}/kernels.bin", _hash(bytes(declared)) if lying else "sha256=x", declared))
    record = "".join(f"{a},{b},{c}\n" for a, b, c in record_rows) + f"{info}/RECORD,,\n"
    members = []
    for member, data in [*metadata.items(), (f"{info}/RECORD", record.encode())]:
        packed = zlib.compressobj(6, zlib.DEFLATED, -15)
        members.append((member, packed.compress(data) + packed.flush(), zlib.crc32(data), len(data), 8, 0))
    members.insert(0, (f"{name}/kernels.bin", payload, 0, declared, 8, 0))
    return raw_zip(dest / f"{name}-{version}-py3-none-any.whl", members)


# ---------------------------------------------------------------- a process that installs


HARNESS = """
import os, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from sage_tasks.environment import install
from sage_tasks.stages import probe
from sage_tasks.core.errors import KernelTestError, SageTasksError
python, wheel, package, version, fail = sys.argv[1:6]
print("start", flush=True)
try:
    target = probe.read_target(python, extra=[package])
    with install.Change(target, os.environ, command="harness") as change:
        change.install(Path(wheel), package, version)
        if fail == "fail":
            raise KernelTestError("the check failed (on purpose)")
        change.commit()
except SageTasksError as e:
    print(e.one_line(), file=sys.stderr)
    sys.exit(int(e.code))
print("done", flush=True)
"""


def harness(python: Path, wheel: Path, version: str, env: dict[str, str], fail: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HARNESS.format(repo=str(support.REPO)), str(python), str(wheel), PACKAGE, version,
         "fail" if fail else "ok"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 60) -> bool:
    """True once ``marker`` exists; False if the process ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if marker.exists():
            return True
        if proc.poll() is not None:
            return marker.exists()
        time.sleep(0.005)
    raise TimeoutError(f"{marker} did not appear")


# ---------------------------------------------------------------- the judge


def site_packages(python: Path) -> Path:
    return next((python.parent.parent / "lib").glob("python3.*/site-packages"))


def file_hash(path: Path) -> str:
    return _hash(path.read_bytes())


@dataclass(frozen=True)
class State:
    holds: str  # a version, "none", or "broken"
    problems: tuple[str, ...] = ()


def judge(python: Path, wheels: dict[str, Path], package: str = PACKAGE) -> State:
    """Exactly one of ``wheels`` installed, every file byte for byte as its RECORD says and no file
    of another version left; or no trace of the package; anything else is broken."""
    site = site_packages(python)
    problems = []
    norm = package.replace("-", "_")
    infos = [p for p in site.glob(f"{norm}-*.dist-info")]
    state_dir = site / ".sage-tasks"
    if list(state_dir.glob("journal*.json")):
        problems.append("a journal is left")
    if list(state_dir.glob("txn-*")):
        problems.append("a staging folder is left")
    ours = (
        {str(p.relative_to(site)) for p in (site / norm).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
        if (site / norm).exists()
        else set()
    )
    if not infos:
        if ours:
            problems.append(f"no metadata but {len(ours)} package files")
        return State("broken" if problems else "none", tuple(problems))
    if len(infos) > 1:
        return State("broken", (f"{len(infos)} .dist-info folders: {sorted(p.name for p in infos)}", *problems))
    version = infos[0].name[len(norm) + 1 : -len(".dist-info")]
    wheel = wheels.get(version)
    if wheel is None:
        return State("broken", (f"version {version} is none of {sorted(wheels)}", *problems))
    record = wheel_record(wheel)
    for member, hashed in record.items():
        path = site / member
        if not path.is_file():
            problems.append(f"{member} missing")
        elif file_hash(path) != hashed:
            problems.append(f"{member} differs from {wheel.name}'s RECORD")
    extra = ours - set(record)
    if extra:
        problems.append(f"{len(extra)} files of no RECORD, e.g. {sorted(extra)[0]}")
    expected = record.keys() | {f"{infos[0].name}/{name}" for name in ("RECORD", "INSTALLER", "direct_url.json")}
    leftover = [str(p.relative_to(site)) for p in infos[0].rglob("*")
                if p.is_file() and str(p.relative_to(site)) not in expected]  # fmt: skip
    if leftover:
        problems.append(f"unexpected metadata files {leftover}")
    return State("broken" if problems else version, tuple(problems))


def imports_agree(python: Path, package: str = PACKAGE) -> bool:
    """What ``pip list`` says is installed is what ``import`` gives: listed ⇔ importable, and the
    module's ``__version__`` (where it has one) is the listed version."""
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    version = next((p["version"] for p in json.loads(listed) if p["name"] == package), None)
    code = f"import {package.replace('-', '_')} as m; print(getattr(m, '__version__', 'importable'))"
    imported = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    got = imported.stdout.strip() if imported.returncode == 0 else None
    return (got is None and version is None) or (version is not None and got in (version, "importable"))


def pip_check(python: Path) -> str:
    done = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    return done.stdout.strip()


# ---------------------------------------------------------------- kill campaigns (tests and bench)


@dataclass
class Tally:
    injected: int = 0
    consistent: int = 0
    broken: int = 0
    rolled_back: int = 0  # consistent, holding the old installation
    rolled_forward: int = 0  # consistent, holding the new one
    examples: list[str] | None = None

    def add(self, state: State, old: str, new: str) -> None:
        self.injected += 1
        if state.holds in (old, new):
            self.consistent += 1
            if state.holds == old:
                self.rolled_back += 1
            else:
                self.rolled_forward += 1
        else:
            self.broken += 1
            self.examples = [*(self.examples or []), f"{old}→{new}: {state.holds} {list(state.problems)[:3]}"]

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.injected + other.injected,
            self.consistent + other.consistent,
            self.broken + other.broken,
            self.rolled_back + other.rolled_back,
            self.rolled_forward + other.rolled_forward,
            [*(self.examples or []), *(other.examples or [])] or None,
        )

    def line(self, what: str) -> str:
        return (
            f"{what}: injected {self.injected}, consistent {self.consistent} "
            f"(old kept {self.rolled_back}, new committed {self.rolled_forward}), broken {self.broken}"
        )


BOUNDARIES = (
    "locked", "staged", "journal-written", "old-half", "old-moved", "new-half", "installed", "read-back",
    "checked", "committed", "cleaned", "rollback-half",
)  # fmt: skip


def kill_campaign(
    work: Path,
    python: Path,
    wheels: dict[str, Path],
    *,
    boundary_kills: int,
    random_kills: int,
    seed: int | None = None,
    deep_check_every: int = 10,
    log=print,
) -> tuple[Tally, Tally]:
    """SIGKILL an installing process at every step boundary (in turn) and at random moments; after
    each kill, recover (as the next command does) and judge the environment from its files.
    Returns the tallies (boundaries, random moments), counted from what was observed."""
    import random
    import signal

    from sage_tasks.environment import envlock, transaction
    from sage_tasks.stages import probe

    rng = random.Random(seed)
    versions = sorted(wheels)
    target = probe.read_target(str(python), extra=[PACKAGE])
    state_dir = envlock.state_dir(target.paths)
    env = {**os.environ, "SAGE_TASKS_TEST_PAUSE_FILE": str(work / "paused")}
    baseline_check = pip_check(python)

    def recover() -> None:
        with envlock.hold(state_dir, env, command="recover", where=str(python)):
            transaction.recover(state_dir, env)

    def current() -> str:
        return judge(python, wheels).holds

    # uninterrupted installs (a fresh one, then a replacement), timed: random kills land anywhere
    # in the longer span (a kill after the process ended is not counted)
    span = 0.0
    for version in versions[:2]:
        start = time.monotonic()
        done = harness(python, wheels[version], version, env)
        done.communicate(timeout=600)
        span = max(span, time.monotonic() - start)
        assert done.returncode == 0 and current() == version, "an uninterrupted install failed"
    tallies = (Tally(), Tally())
    plan = [("boundary", BOUNDARIES[i % len(BOUNDARIES)]) for i in range(boundary_kills)]
    plan += [("random", None)] * random_kills
    retries = 2 * random_kills  # a random kill that lands after the process ended is tried again
    n = -1
    while plan:
        mode, step = plan.pop(0)
        n += 1
        old = current()
        new = next(v for v in versions if v != old)
        (work / "paused").unlink(missing_ok=True)
        run_env = dict(env)
        if step:
            run_env["SAGE_TASKS_TEST_PAUSE"] = step
        proc = harness(python, wheels[new], new, run_env, fail=step == "rollback-half")
        if step:
            reached = wait_for(work / "paused", proc)
        else:
            time.sleep(rng.uniform(0, 1.1 * span))
            reached = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        if not reached:
            log(f"kill {n} ({mode} {step}): the process had finished before the kill; not counted")
            if mode == "random" and retries > 0:
                retries -= 1
                span *= 0.9  # installs run faster than the timed one: aim earlier
                plan.append((mode, step))
            continue
        recover()
        state = judge(python, wheels)
        if state.holds in (old, new) and deep_check_every and n % deep_check_every == 0:
            if pip_check(python) != baseline_check:
                state = State("broken", ("pip check reports something new",))
            elif not imports_agree(python):
                state = State("broken", ("pip list and import disagree",))
        tallies[0 if mode == "boundary" else 1].add(state, old, new)
        if state.holds not in (old, new):
            log(f"kill {n} ({mode} {step}): BROKEN {state.problems[:3]}")
            _reset(python, wheels[versions[0]], versions[0], env)  # start the next kill from a clean state
    return tallies


def _reset(python: Path, wheel: Path, version: str, env: dict[str, str]) -> None:
    import shutil

    site = site_packages(python)
    for path in [site / PACKAGE, *site.glob(f"{PACKAGE}-*.dist-info"), site / ".sage-tasks"]:
        shutil.rmtree(path, ignore_errors=True)
    harness(python, wheel, version, env).communicate(timeout=600)


def parallel_campaigns(
    work: Path, wheels: dict[str, Path], *, lanes: int, boundary_kills: int, random_kills: int, log=print
) -> tuple[Tally, Tally]:
    """``kill_campaign`` in ``lanes`` venvs side by side (each lane gets its share of the kills)."""
    from concurrent.futures import ThreadPoolExecutor

    def lane(i: int) -> tuple[Tally, Tally]:
        folder = work / f"lane{i}"
        folder.mkdir(parents=True, exist_ok=True)
        venv = support.make_venv(folder / "venv")
        share = lambda total: total // lanes + (1 if i < total % lanes else 0)  # noqa: E731
        return kill_campaign(
            folder, venv, wheels, boundary_kills=share(boundary_kills), random_kills=share(random_kills), log=log
        )

    with ThreadPoolExecutor(lanes) as pool:
        results = list(pool.map(lane, range(lanes)))
    boundaries, moments = Tally(), Tally()
    for b, m in results:
        boundaries, moments = boundaries + b, moments + m
    return boundaries, moments
