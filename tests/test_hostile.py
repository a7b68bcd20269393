"""Every task, run as a user would (a real ``invoke`` subprocess), against hostile inputs and
environments: each run must end with a documented exit code, one clear line that says what to
do next (``next: …``), no Python traceback, and within a time bound.

The cases are grouped in named input classes (``CLASSES``); each class is applied to every task
that reads that input. The runs go through a small thread pool so that the whole harness costs
about a minute on two cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sage_tasks.core.errors import ExitCode
from tests import support

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 60
WORKERS = 3
ONE_LINE = re.compile(r"^[a-z][a-z ]+: .+ \(next: .+\)$")
DOCUMENTED = {int(code) for code in ExitCode}
PY_TASKS = ("probe", "fetch --dry-run", "build --dry-run", "test-kernel")
STORE_TASKS = ("pin --check", "fetch --dry-run", "publish", "yank", "unyank", "auto --dry-run")
STORE_READERS = ("fetch --dry-run", "publish", "yank")
WHEEL = "sage_demo-0.1.0+cu128torch2.8.0-py3-none-any.whl"


@dataclass(frozen=True)
class Case:
    klass: str
    name: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    may_pass: bool = False  # the input turns out harmless: exit 0 is fine too

    @property
    def id(self) -> str:
        return f"{self.klass}/{self.name}/{' '.join(self.args[:2])}"


def task_args(task: str, world: dict[str, Path]) -> tuple[str, ...]:
    """The plain command line of a task in the test world (the hostile part is added by a case)."""
    return {
        "probe": ("probe",),
        "pin --check": ("pin", "--check", "--arch", "12.0"),
        "fetch --dry-run": ("fetch", "--dry-run", "--arch", "12.0"),
        "build --dry-run": ("build", "--dry-run", "--arch", "12.0"),
        "test-kernel": ("test-kernel",),
        "auto --dry-run": ("auto", "--dry-run", "--arch", "12.0"),
        "publish": ("publish", "--wheel", str(world["dist"] / WHEEL), "--allow-unverified"),
        "yank": ("yank", WHEEL, "--reason", "hostile test"),
        "unyank": ("unyank", WHEEL),
        "init-hf --dry-run": ("init-hf", "--dry-run"),
        "binaries": ("binaries", str(world["zips"] / "ok.whl")),
        "summary": ("summary",),
        "source": ("source", str(world["root"] / "never-created")),
    }[task]


# ---------------------------------------------------------------- the hostile world


def _bad_zips(where: Path) -> dict[str, Path]:
    where.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    ok = where / "ok.whl"
    with zipfile.ZipFile(ok, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("demo/_k.so", b"\x7fELF" + b"\0" * 4000)
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    made["ok"] = ok
    data = ok.read_bytes()
    start = data.index(b"PK\x03\x04")
    header_end = start + 30 + len("demo/_k.so")
    broken = bytearray(data)
    for i in range(header_end, header_end + 40):
        broken[i] ^= 0xFF  # the deflate stream of the .so: zlib.error or a bad CRC
    made["bad-deflate"] = where / "bad-deflate.whl"
    made["bad-deflate"].write_bytes(bytes(broken))
    made["truncated"] = where / "truncated.whl"
    made["truncated"].write_bytes(data[: len(data) // 2])
    made["empty"] = where / "empty.whl"
    made["empty"].write_bytes(b"")
    made["not-a-zip"] = where / "not-a-zip.whl"
    made["not-a-zip"].write_bytes(b"this is not a zip file\n" * 10)
    names = where / "bad-names.whl"
    with zipfile.ZipFile(names, "w") as zf:
        zf.writestr("demo/ok.py", "")
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    raw = bytearray(names.read_bytes())
    for old in (b"demo/ok.py",):  # same length, not UTF-8, and the UTF-8 flag stays unset
        for at in [m.start() for m in re.finditer(re.escape(old), bytes(raw))]:
            raw[at : at + len(old)] = b"demo/\xff\xfe.py"[: len(old)].ljust(len(old), b"x")
    names.write_bytes(bytes(raw))
    made["undecodable-names"] = names
    utf8 = where / "utf8-flag-bad-names.whl"
    info = zipfile.ZipInfo("demo/x.py")
    info.flag_bits |= 0x800
    with zipfile.ZipFile(utf8, "w") as zf:
        zf.writestr(info, "")
    raw = bytearray(utf8.read_bytes())
    for at in [m.start() for m in re.finditer(re.escape(b"demo/x.py"), bytes(raw))]:
        raw[at : at + 9] = b"demo/\xc3(.y"
    utf8.write_bytes(bytes(raw))
    made["utf8-flag-invalid"] = utf8
    made["directory"] = where / "dir.whl"
    made["directory"].mkdir(exist_ok=True)
    made["fifo"] = where / "fifo.whl"
    os.mkfifo(made["fifo"])
    bomb = where / "many-members.whl"
    with zipfile.ZipFile(bomb, "w") as zf:
        for i in range(3000):
            zf.writestr(f"demo/m{i}.so", b"")
    made["many-members"] = bomb
    return made


RECIPE_BASE = {
    "name": '"hostile"',
    "package": '"sage-demo"',
    "version": '"0.1.0"',
}


def _recipe_text(**override: str) -> str:
    top = {**RECIPE_BASE, **{k: v for k, v in override.items() if not k.startswith(("source.", "build.", "check."))}}
    text = "".join(f"{k} = {v}\n" for k, v in top.items())
    for table, defaults in (
        ("source", {"repo": '"file:///nonexistent"', "ref": '"v0.1.0"'}),
        ("build", {"cuda": "false", "needs_torch": "false", "requires": "[]", "extensions": "1"}),
        ("check", {"module": '"sage_demo.selfcheck"'}),
    ):
        values = {**defaults, **{k.split(".", 1)[1]: v for k, v in override.items() if k.startswith(table + ".")}}
        text += f"\n[{table}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
    return text


WRONG_RECIPES = {
    "version-int": {"version": "3"},
    "name-list": {"name": '["a"]'},
    "package-table": {"package": "{x = 1}"},
    "source-repo-int": {"source.repo": "5"},
    "source-ref-bool": {"source.ref": "true"},
    "cuda-string": {"build.cuda": '"yes"'},
    "requires-string": {"build.requires": '"setuptools"'},
    "requires-ints": {"build.requires": "[1, 2]"},
    "extensions-string": {"build.extensions": '"four"'},
    "extensions-negative": {"build.extensions": "-3"},
    "memory-string": {"build.memory_per_job_gib": '"lots"'},
    "archs-string": {"build.supported_archs": '"12.0"'},
    "archs-ints": {"build.supported_archs": "[12, 9]"},
    "min-nvcc-list": {"build.min_nvcc": '["12.8"]'},
    "check-module-int": {"check.module": "7"},
    "not-toml": {"version": '"0.1.0"\n[[[['},
}

_PINS = 'torchvision = "0.23.0"\ntorchaudio = "2.8.0"\ntriton = "3.4.0"\n'
WRONG_STACKS = {
    "packages-string": 'name = "s"\ntarget_arch = "12.0"\npackages = "torch"\n',
    "version-int": 'name = "s"\ntarget_arch = "12.0"\n[packages]\ntorch = 2\n' + _PINS,
    "version-list": 'name = "s"\ntarget_arch = "12.0"\n[packages]\ntorch = ["2.8.0"]\n' + _PINS,
    "arch-float": 'name = "s"\ntarget_arch = 12.0\n[packages]\ntorch = "2.8.0"\n' + _PINS,
    "index-int": 'name = "s"\ntarget_arch = "12.0"\ntorch_index_url = 5\n[packages]\ntorch = "2.8.0"\n' + _PINS,
    "bad-version": 'name = "s"\ntarget_arch = "12.0"\n[packages]\ntorch = "not a version!"\n' + _PINS,
    "not-toml": "= = =\n",
    "binary": "\udcff",
}


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    home = root / "home"
    home.mkdir()
    base_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_REPO_ID", "WHEEL_URL", "MAX_JOBS", "EXT_PARALLEL")
    }
    base_env.update(
        HOME=str(home),
        SAGE_STORE=str(root / "store"),
        SAGE_DIST=str(root / "dist"),
        SAGE_TASKS_CACHE=str(root / "cache"),
        HF_HOME=str(root / "hf"),
        HF_ENDPOINT="http://127.0.0.1:9",  # nothing listens there: any Hub call fails at once
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_ETAG_TIMEOUT="2",
        HF_HUB_DOWNLOAD_TIMEOUT="2",
        SAGE_RETRY_BASE_S="0",
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INPUT="1",
        PIP_NO_INDEX="1",
        SAGE_RECIPE=str(root / "demo.toml"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    support.write_demo_recipe(root / "demo.toml", "file:///nonexistent", None)
    wheel = support.demo_wheel(root / "dist")
    support.demo_manifest(wheel)
    assert wheel.name == WHEEL
    published = run(("publish", "--wheel", str(wheel), "--allow-unverified"), base_env, root)
    assert published.returncode == 0, published.stderr
    hostile = root / "hostile"
    hostile.mkdir()
    # interpreters that are not
    (hostile / "venv-root" / "bin").mkdir(parents=True)
    (hostile / "not-executable").write_text("#!/bin/sh\nexit 0\n")
    garbage = hostile / "garbage-python"
    garbage.write_text("#!/bin/sh\necho 'not json at all'\n")
    garbage.chmod(0o755)
    failing = hostile / "failing-python"
    failing.write_text("#!/bin/sh\necho 'Fatal Python error: init_fs_encoding' >&2\nexit 1\n")
    failing.chmod(0o755)
    liar = hostile / "old-python"
    liar.write_text(
        "#!/bin/sh\necho '"
        + json.dumps({"version": "3.6.15", "implementation": "cpython", "version_info": [3, 6, 15], "packages": {}})
        + "'\n"
    )
    liar.chmod(0o755)
    os.mkfifo(hostile / "fifo-python")
    (hostile / "recipes").mkdir()
    for name, override in WRONG_RECIPES.items():
        (hostile / "recipes" / f"{name}.toml").write_text(_recipe_text(**override))
    os.mkfifo(hostile / "recipes" / "fifo.toml")
    (hostile / "stacks").mkdir()
    for name, text in WRONG_STACKS.items():
        (hostile / "stacks" / f"{name}.toml").write_text(text, errors="surrogateescape")
    os.mkfifo(hostile / "stacks" / "fifo.toml")
    zips = _bad_zips(root / "zips")
    return {
        "root": root,
        "dist": root / "dist",
        "hostile": hostile,
        "zips": root / "zips",
        "env": base_env,
        **{f"zip:{k}": v for k, v in zips.items()},
    }  # type: ignore[dict-item]


def run(args: tuple[str, ...], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


# ---------------------------------------------------------------- the cases, by input class


def _store_variant(world: dict[str, Path], name: str, index: str | bytes | None, fifo: bool = False) -> Path:
    """A copy of the store whose index.json is replaced by hostile content (or a FIFO)."""
    import shutil

    dest = world["root"] / "stores" / name
    if not dest.exists():
        shutil.copytree(world["root"] / "store", dest)
        target = dest / "sageattention" / "index.json"
        target.unlink()
        if fifo:
            os.mkfifo(target)
        elif isinstance(index, bytes):
            target.write_bytes(index)
        elif index is not None:
            target.write_text(index)
    return dest


def _dist_variant(world: dict[str, Path], name: str, manifest: str | None, fifo: bool = False) -> Path:
    import shutil

    dest = world["root"] / "dists" / name
    if not dest.exists():
        dest.mkdir(parents=True)
        shutil.copy(world["dist"] / WHEEL, dest / WHEEL)
        target = dest / f"{WHEEL}.json"
        if fifo:
            os.mkfifo(target)
        elif manifest is not None:
            target.write_text(manifest)
    return dest


def build_cases(world: dict[str, Path]) -> list[Case]:
    h = world["hostile"]
    cases: list[Case] = []

    def add(klass: str, name: str, tasks: tuple[str, ...], extra=(), env=None, may_pass=False, args=None):
        for task in tasks:
            base = args(task) if args else task_args(task, world)
            cases.append(Case(klass, name, (*base, *extra), dict(env or {}), may_pass))

    # 1-5. interpreters that are not interpreters
    for name, path in (
        ("venv-root", h / "venv-root"),
        ("not-executable", h / "not-executable"),
        ("missing", h / "nope" / "python"),
        ("fifo", h / "fifo-python"),
    ):
        add("python-not-an-interpreter", name, PY_TASKS, ("--python", str(path)))
    for name, path in (("garbage", h / "garbage-python"), ("failing", h / "failing-python"), ("old", h / "old-python")):
        add("python-misbehaving", name, PY_TASKS, ("--python", str(path)))
    add("python-not-an-interpreter", "venv-root", ("pin --check", "auto --dry-run"), ("--python", str(h / "venv-root")))
    add("python-env", "PYTHON_BIN-directory", ("probe", "fetch --dry-run"), env={"PYTHON_BIN": str(h / "venv-root")})
    # 6. job counts
    for value in ("²", "-1", "0", "٣", "1e3", "4.5", "99999999999999999999999", "0x10", " 7 "):
        add("job-counts", f"MAX_JOBS={value}", ("build --dry-run",), env={"MAX_JOBS": value},
            may_pass=value.strip() == "7")  # fmt: skip
    for value in ("²", "-1", "none"):
        add("job-counts", f"EXT_PARALLEL={value}", ("build --dry-run",), env={"EXT_PARALLEL": value})
    for value in ("²", "-3", "x1"):
        add("job-counts", f"--seed {value}", ("test-kernel",), ("--seed", value))
    # 7. Hub repo ids
    for value in ("a b", "../x", "a/../b", "x/" + "y" * 200, "a/b/c", "/abs", "-x/y", "a/b\n"):
        add("hub-repo-id", f"HF_REPO_ID={value!r}", ("fetch --dry-run", "init-hf --dry-run"),
            env={"HF_REPO_ID": value})  # fmt: skip
    add(
        "hub-repo-id",
        "HF_REPO_ID='a b'",
        ("pin --check", "yank", "unyank", "auto --dry-run"),
        env={"HF_REPO_ID": "a b"},
    )
    add("hub-repo-id", "HF_REPO_ID=''", ("pin --check", "fetch --dry-run"), env={"HF_REPO_ID": ""}, may_pass=True)
    add("hub-repo-id", "unreachable-hub", ("fetch --dry-run", "init-hf --dry-run"), env={"HF_REPO_ID": "me/wheels"})
    for value in ("nope", ""):
        add("hub-settings", f"HF_REPO_TYPE={value!r}", ("fetch --dry-run",),
            env={"HF_REPO_ID": "me/wheels", "HF_REPO_TYPE": value}, may_pass=False)  # fmt: skip
    add("hub-settings", "HF_REPO_BRANCH=..", ("fetch --dry-run",), env={"HF_REPO_ID": "me/w", "HF_REPO_BRANCH": ".."})
    # 8. FIFOs where JSON or TOML is expected
    fifo_store = _store_variant(world, "fifo", None, fifo=True)
    add("fifo-instead-of-file", "index.json", STORE_TASKS, env={"SAGE_STORE": str(fifo_store)})
    fifo_dist = _dist_variant(world, "fifo", None, fifo=True)
    add("fifo-instead-of-file", "manifest", ("publish", "summary"), env={"SAGE_DIST": str(fifo_dist)},
        args=lambda t: ("publish", "--wheel", str(fifo_dist / WHEEL), "--allow-unverified") if t == "publish" else task_args(t, world))  # fmt: skip
    add("fifo-instead-of-file", "recipe", ("probe", "fetch --dry-run", "build --dry-run", "summary", "source"),
        env={"SAGE_RECIPE": str(h / "recipes" / "fifo.toml")})  # fmt: skip
    add("fifo-instead-of-file", "stack", ("pin --check", "build --dry-run", "auto --dry-run"),
        extra=("--stack", str(h / "stacks" / "fifo.toml")))  # fmt: skip
    add("fifo-instead-of-file", "test-kernel-manifest", ("test-kernel",), extra=("--manifest", str(h / "fifo-python")))
    # 9. deeply nested and otherwise malformed JSON in the store
    for name, text in (
        ("deep-list", _deep(200_000)),
        ("deep-object", '{"a":' * 100_000 + "1" + "}" * 100_000),
        (
            "deep-wheels",
            json.dumps({"schema_version": 1, "wheels": [json.loads(_deep(50))]})[:-2] + _deep(100_000) + "]}",
        ),
        ("huge-int", '{"schema_version": ' + "9" * 100_000 + ', "wheels": []}'),
        ("nan", '{"schema_version": NaN, "wheels": []}'),
        ("wheels-string", '{"schema_version": 1, "wheels": "sage"}'),
        ("wheels-ints", '{"schema_version": 1, "wheels": [1, 2]}'),
        ("null", "null"),
        ("empty", ""),
    ):
        store = _store_variant(world, name, text)
        add("malformed-index", name, STORE_READERS[:2], env={"SAGE_STORE": str(store)})
    for name, data in (("latin1", b'{"schema_version": 1, "wheels": [], "x": "\xe9"}'), ("nul", b"\0" * 64)):
        store = _store_variant(world, name, data)
        add("undecodable-index", name, ("fetch --dry-run", "publish", "yank"), env={"SAGE_STORE": str(store)})
    # 10. malformed manifests in dist/
    for name, text in (
        ("deep", _deep(100_000)),
        ("wrong-types", json.dumps({"package": ["x"], "version": 1, "wheel_file": {}, "wheel_sha256": None})),
        ("truncated", '{"package": "sage-demo", "ver'),
        ("size-string", None),
    ):
        if text is None:
            data = json.loads((world["dist"] / f"{WHEEL}.json").read_text())
            data["wheel_size"] = "big"
            text = json.dumps(data)
        dist = _dist_variant(world, f"m-{name}", text)
        add("malformed-manifest", name, ("publish", "summary"), env={"SAGE_DIST": str(dist)},
            args=lambda t, d=dist: ("publish", "--wheel", str(d / WHEEL), "--allow-unverified") if t == "publish" else task_args(t, world))  # fmt: skip
    # 11. recipes with values of the wrong type
    for name in WRONG_RECIPES:
        add("recipe-wrong-types", name, ("build --dry-run",),
            env={"SAGE_RECIPE": str(h / "recipes" / f"{name}.toml")})  # fmt: skip
    for name in ("extensions-string", "archs-ints", "min-nvcc-list"):
        add("recipe-wrong-types", name, ("probe", "fetch --dry-run", "summary", "source", "test-kernel"),
            env={"SAGE_RECIPE": str(h / "recipes" / f"{name}.toml")})  # fmt: skip
    # 12. stack locks with values of the wrong type
    for name in WRONG_STACKS:
        add("stack-wrong-types", name, ("pin --check",), extra=("--stack", str(h / "stacks" / f"{name}.toml")))
    add("stack-wrong-types", "version-int", ("auto --dry-run", "build --dry-run"),
        extra=("--stack", str(h / "stacks" / "version-int.toml")))  # fmt: skip
    # 13. broken zips (wheels)
    for name in ("bad-deflate", "truncated", "empty", "not-a-zip", "undecodable-names", "utf8-flag-invalid",
                 "directory", "fifo", "many-members"):  # fmt: skip
        path = world[f"zip:{name}"]
        add(
            "broken-wheel-zip",
            name,
            ("binaries",),
            args=lambda t, p=path: ("binaries", str(p)),
            may_pass=name in ("many-members", "undecodable-names", "utf8-flag-invalid"),
        )  # listing names is harmless
        add(
            "broken-wheel-zip",
            name,
            ("publish",),
            args=lambda t, p=path: ("publish", "--wheel", str(p), "--allow-unverified"),
        )
    # 14. WHEEL_URL
    for value in ("file:///etc/passwd", "http://127.0.0.1:9/x.whl", "ftp://h/x.whl", "https://user:pw@h.invalid/x.whl",
                  "https://tok@h.invalid/x.whl", "https://", "javascript:alert(1)", "/local/path.whl",
                  "https://h.invalid/../../x.whl"):  # fmt: skip
        add("wheel-url", value, ("fetch --dry-run",), env={"WHEEL_URL": value, "WHEEL_SHA256": "0" * 64})
    add(
        "wheel-url",
        "http-auto",
        ("auto --dry-run",),
        env={"WHEEL_URL": "http://h.invalid/x.whl", "WHEEL_SHA256": "0" * 64},
    )
    add(
        "wheel-url", "bad-sha", ("fetch --dry-run",), env={"WHEEL_URL": "https://h.invalid/x.whl", "WHEEL_SHA256": "zz"}
    )
    # 15. TORCH_INDEX_URL
    for value in ("file:///tmp/x", "http://h.invalid/whl", "https://u:p@h.invalid/whl", "not a url", "https://"):
        # the user's own variable: http and file are theirs to choose; credentials and non-URLs are not
        add("torch-index-url", value, ("pin --check", "auto --dry-run"), env={"TORCH_INDEX_URL": value},
            may_pass=value.startswith(("file:", "http:")))  # fmt: skip
    original = json.loads((world["root"] / "store" / "sageattention" / "index.json").read_text())
    for value in ("http://mirror.invalid/whl/cu128", "file:///srv/whl", "https://u:p@h.invalid/whl", "ftp://h/whl"):
        changed = {**original, "wheels": [{**w, "torch_index_url": value} for w in original["wheels"]]}
        store = _store_variant(world, f"index-url-{len(cases)}", json.dumps(changed))
        add("store-index-url", value, ("pin --check", "auto --dry-run"), env={"SAGE_STORE": str(store)})
    # 16. folders: store, dist, report, source destination
    blocker = world["root"] / "a-file"
    blocker.write_text("x")
    add("bad-folders", "SAGE_STORE-file", STORE_READERS, env={"SAGE_STORE": str(blocker)})
    add("bad-folders", "SAGE_STORE-under-file", ("publish",), env={"SAGE_STORE": str(blocker / "sub")})
    add("bad-folders", "SAGE_STORE-proc", ("publish", "yank"), env={"SAGE_STORE": "/proc/self/no"})
    add("bad-folders", "dist-file", ("summary", "publish"), extra=("--dist", str(blocker)), may_pass=False,
        args=lambda t: ("publish", "--allow-unverified") if t == "publish" else ("summary",))  # fmt: skip
    add("bad-folders", "source-dest-exists", ("source",), args=lambda t: ("source", str(blocker)))
    add("bad-folders", "source-dest-under-file", ("source",), args=lambda t: ("source", str(blocker / "x")))
    add("bad-folders", "report-dir", ("auto --dry-run",), extra=("--report", str(world["root"])))
    add("bad-folders", "report-under-file", ("auto --dry-run",), extra=("--report", str(blocker / "r.json")))
    add(
        "bad-folders",
        "SAGE_TASKS_CACHE-file",
        ("build --dry-run", "test-kernel"),
        env={"SAGE_TASKS_CACHE": str(blocker)},
        may_pass=True,  # a dry run writes nothing into the cache
    )
    # 17. hostile names for yank/unyank/publish
    for value in ("../../etc/passwd", "", "x" * 400 + ".whl", "a\nb.whl", "sub/x-1-py3-none-any.whl", "%2e%2e.whl"):
        add("hostile-wheel-name", repr(value)[:20], ("yank", "unyank"),
            args=lambda t, v=value: (t, v, *(("--reason", "r") if t == "yank" else ())))  # fmt: skip
    add(
        "hostile-wheel-name", "publish-missing", ("publish",), args=lambda t: ("publish", "--wheel", "/nonexistent.whl")
    )
    # 18. arch strings
    for value in ("", "sm_", "12.0;;", "1e9", ";".join(["12.0"] * 500), "12.0 9.0", "-1.0"):
        harmless = value in ("", "12.0;;", ";".join(["12.0"] * 500), "12.0 9.0")  # empty or repeated: still 12.0
        add("arch-strings", repr(value)[:16], ("build --dry-run",), may_pass=harmless,
            args=lambda t, v=value: (*[a for a in task_args(t, world) if a not in ("--arch", "12.0")], "--arch", v))  # fmt: skip
    # 19. store layout settings
    for value in ("..", "a/../b", "a\nb"):
        add("remote-dir", repr(value)[:16], ("fetch --dry-run", "publish"), env={"REMOTE_DIR": value})
    # 20. version settings
    for value in ("2.2.0\n", "x" * 300, "0.1.0; rm -rf /"):
        add("version-settings", repr(value)[:16], ("fetch --dry-run",), env={"SAGE_VERSION": value})
    for value in ("not a version", "2.8.0; x"):
        add("version-settings", f"TORCH_VERSION={value}", ("pin --check",), env={"TORCH_VERSION": value})
    return cases


# ---------------------------------------------------------------- the harness


@dataclass
class Outcome:
    case: Case
    code: int | None
    problems: list[str]
    seconds: float


def judge(case: Case, world: dict[str, Path]) -> Outcome:
    import time

    env = {**world["env"], **case.env}
    start = time.perf_counter()
    try:
        done = run(case.args, env, world["root"])
    except subprocess.TimeoutExpired:
        return Outcome(case, None, [f"no answer within {RUN_TIMEOUT_S} s"], RUN_TIMEOUT_S)
    seconds = time.perf_counter() - start
    problems = []
    if "Traceback (most recent call last)" in done.stderr or "Traceback" in done.stdout:
        problems.append("traceback:\n" + done.stderr[-1500:])
    if done.returncode not in DOCUMENTED:
        problems.append(f"exit code {done.returncode} is not documented")
    if done.returncode == 0 and not case.may_pass:
        problems.append("exit 0 for a hostile input")
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if ONE_LINE.match(line)]
        if len(lines) != 1:
            problems.append(f"{len(lines)} error lines with a hint; stderr tail: {done.stderr[-600:]!r}")
    return Outcome(case, done.returncode, problems, seconds)


def test_hostile_inputs_end_in_one_typed_line(world):
    cases = build_cases(world)
    classes = {c.klass for c in cases}
    assert len(cases) >= 200 and len(classes) >= 15, (len(cases), len(classes))
    tasks_seen = {c.args[0] for c in cases}
    assert tasks_seen >= {"probe", "pin", "fetch", "build", "test-kernel", "publish", "yank", "unyank", "init-hf",
                          "auto", "binaries", "summary", "source"}  # fmt: skip
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = list(pool.map(lambda c: judge(c, world), cases))
    failed = [o for o in outcomes if o.problems]
    report = "\n\n".join(f"[{o.case.id}] code={o.code} env={o.case.env}\n  " + "\n  ".join(o.problems) for o in failed)
    by_code: dict[int | None, int] = {}
    for o in outcomes:
        by_code[o.code] = by_code.get(o.code, 0) + 1
    print(f"\n{len(outcomes)} hostile runs in {len(classes)} classes; exit codes {by_code}; "
          f"slowest {max(o.seconds for o in outcomes):.1f} s")  # fmt: skip
    support.count_fault("hostile inputs, every task (test_hostile.py)", injected=len(outcomes),
                        survived=len(outcomes) - len(failed))  # fmt: skip
    out = os.environ.get("SAGE_HOSTILE_OUT")  # the whole table, for whoever fixes what failed
    if out:
        Path(out).write_text(json.dumps([
            {"case": o.case.id, "env": o.case.env, "code": o.code, "seconds": round(o.seconds, 2), "problems": o.problems}
            for o in outcomes
        ], indent=1))  # fmt: skip
    assert not failed, f"{len(failed)} of {len(outcomes)} runs misbehaved:\n{report}"


# ---------------------------------------------------------------- the exit codes have one source


def test_readme_exit_code_table_matches_the_code():
    text = (support.REPO / "README.md").read_text()
    section = text.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| code")]
    table = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells[0].isdigit():
            table[int(cells[0])] = cells[1].strip("`")
    assert table == {int(code): code.name for code in ExitCode}
