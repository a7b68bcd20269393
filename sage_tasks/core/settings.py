"""Settings, resolved once: built-in defaults → committed manifests/ → environment → flags.

The environment is passed in (``env=os.environ`` at the edge), never read deep inside. The
bash installer's variable names keep working: ``HF_REPO_ID``, ``HF_TOKEN``, ``HF_REPO_TYPE``,
``HF_PRIVATE``, ``REMOTE_DIR``, ``TORCH_VERSION``..., ``SAGE_VERSION``, ``SAGE_SOURCE_REPO``,
``SAGE_SOURCE_REF``, ``TORCH_CUDA_ARCH_LIST``, ``MAX_JOBS``, ``EXT_PARALLEL``, ``WHEEL_URL``,
``ALLOW_UNSAFE_WHEEL``, ``PYTHON_BIN``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..store.manifest import check_relative_path
from . import archs, locations, tomlfile
from .errors import ConfigError, IntegrityError
from .recipe import Recipe, Source, load_recipe

FLAGS = {"python", "recipe", "store", "hub", "arch", "stack", "source", "dist", "verbose", "timeout", "installer", "keep_stack",
         "progress"}  # fmt: skip
INSTALLERS = ("uv", "pip")
_DEFAULT_KEYS = {"recipe", "recipe_fallbacks", "stack", "remote_dir"}
TRUE = {"1", "true", "yes", "on"}
MAX_PARALLEL = 4096


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # "local" or "hub"
    local_dir: Path
    remote_dir: str
    repo_id: str | None = None
    repo_type: str = "dataset"
    revision: str = "main"
    private: bool = False
    endpoint: str | None = None
    preferred_arch: str | None = None

    def describe(self) -> str:
        if self.kind == "hub":
            return f"hf {self.repo_type} {self.repo_id}@{self.revision}:{self.remote_dir}"
        return f"local directory {self.local_dir / self.remote_dir}"


@dataclass(frozen=True)
class Settings:
    python: str
    recipe: Recipe
    manifests_dir: Path
    store: StoreConfig
    cache_dir: Path
    dist_dir: Path
    arch: tuple[str, ...]
    arch_origin: str | None
    stack: str | None
    default_stack: str
    source: str | None
    max_jobs: int | None
    ext_parallel: int | None
    wheel_url: str | None
    wheel_sha256: str | None
    allow_unsafe_wheel: bool
    allow_http: bool
    env: Mapping[str, str]
    verbose: bool = False
    # where the recipe came from ("--recipe", "SAGE_RECIPE" or "default") and, for "default",
    # the candidates in order: `auto` picks the first not known to fail on this machine's archs
    recipe_origin: str = "default"
    default_recipes: tuple[str, ...] = ()
    installer: str | None = None  # "uv" or "pip" forced; None: uv when it can run
    keep_stack: bool = False  # never change torch/torchvision/torchaudio/triton
    build_timeout: float | None = None  # --timeout of build/auto: the compile is stopped after this
    progress: bool = False  # show installer progress (a terminal, not --json, not CI)
    python_origin: str = "this interpreter"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("env", "recipe")}
        data["recipe"] = self.recipe.name
        data["store"] = self.store.describe()
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}


def _int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    # str.isdigit accepts '²' and '٣': only ASCII digits, and a bound no machine reaches
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PARALLEL:
        raise ConfigError(
            f"{name}={text!r} is not a whole number from 1 to {MAX_PARALLEL}", f"unset {name} or set it to e.g. 4"
        )
    return int(text)


def _timeout(value: object) -> float | None:
    if value in (None, ""):
        return None
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 7 * 86400:  # also refuses nan and inf
        raise ConfigError(f"--timeout {value!r} is not a number of seconds", "pass e.g. --timeout 3600")
    return seconds


def _defaults(manifests_dir: Path) -> dict[str, str]:
    path = manifests_dir / "defaults.toml"
    data = tomlfile.load(path)
    tomlfile.check_keys(data, _DEFAULT_KEYS, str(path))
    return data


def _recipe(name: str, manifests_dir: Path, env: Mapping[str, str]) -> Recipe:
    recipe = load_recipe(name, manifests_dir)
    wanted = env.get("SAGE_VERSION", "").strip()
    if wanted and wanted != recipe.version:
        raise ConfigError(
            f"SAGE_VERSION={wanted} but recipe {recipe.name} builds {recipe.version}",
            "unset SAGE_VERSION or pass --recipe for that version",
        )
    repo, ref = env.get("SAGE_SOURCE_REPO", "").strip(), env.get("SAGE_SOURCE_REF", "").strip()
    if (repo and repo != recipe.source.repo) or (ref and ref != recipe.source.ref):
        # Another source than the pinned one: its commit is recorded, not verified.
        recipe = dataclasses.replace(
            recipe, source=Source(repo=repo or recipe.source.repo, ref=ref or recipe.source.ref, commit=None)
        )
    return recipe


def _lock_arch(name: str, manifests_dir: Path) -> str | None:
    path = manifests_dir / "stacks" / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"the default stack lock {path} is missing", "restore manifests/ from git")
    target = tomlfile.load(path).get("target_arch")
    return archs.normalize_arch(target) if target else None


def resolve(flags: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Turn command-line flags and the environment into one frozen ``Settings``."""
    unknown = set(flags) - FLAGS
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(f"unknown setting '{name}'", tomlfile.did_you_mean(name, FLAGS))
    manifests_dir = locations.manifests_dir(env)
    defaults = _defaults(manifests_dir)
    recipe = _recipe(flags.get("recipe") or env.get("SAGE_RECIPE") or defaults["recipe"], manifests_dir, env)
    recipe_origin = "--recipe" if flags.get("recipe") else ("SAGE_RECIPE" if env.get("SAGE_RECIPE") else "default")

    arch_text, arch_origin = None, None
    if flags.get("arch"):
        arch_text, arch_origin = flags["arch"], "--arch"
    elif env.get("TORCH_CUDA_ARCH_LIST"):
        arch_text, arch_origin = env["TORCH_CUDA_ARCH_LIST"], "TORCH_CUDA_ARCH_LIST"
    wanted_archs = archs.parse_arch_list(arch_text)
    recipe.check_archs(wanted_archs)

    remote_dir = (env.get("REMOTE_DIR") or defaults["remote_dir"]).strip().strip("/")
    try:
        check_relative_path(remote_dir)
    except IntegrityError as e:
        raise ConfigError(
            f"REMOTE_DIR={remote_dir!r} is not a plain folder name", "use e.g. REMOTE_DIR=sageattention"
        ) from e
    repo_id = flags.get("hub") or (None if flags.get("store") else env.get("HF_REPO_ID"))
    repo_type = env.get("HF_REPO_TYPE", "dataset").strip() or "dataset"
    if repo_type not in ("dataset", "model", "space"):
        raise ConfigError(f"HF_REPO_TYPE={repo_type!r} is not dataset, model or space")
    default_stack = defaults["stack"]
    store = StoreConfig(
        kind="hub" if repo_id else "local",
        local_dir=Path(flags.get("store") or locations.default_store_dir(env)).expanduser(),
        remote_dir=remote_dir,
        repo_id=repo_id,
        repo_type=repo_type,
        revision=env.get("HF_REPO_BRANCH") or env.get("HF_REVISION") or "main",
        private=env.get("HF_PRIVATE", "false").strip().lower() in TRUE,
        endpoint=env.get("HF_ENDPOINT") or None,
        preferred_arch=_lock_arch(default_stack, manifests_dir),
    )
    python, python_origin = locations.default_python(flags.get("python"), env)
    installer = (flags.get("installer") or env.get("SAGE_INSTALLER") or "").strip().lower() or None
    if installer is not None and installer not in INSTALLERS:
        raise ConfigError(
            f"installer {installer!r} is not uv or pip", "use --installer uv|pip or SAGE_INSTALLER=uv|pip"
        )
    in_ci = env.get("CI", "").lower() in TRUE or env.get("GITHUB_ACTIONS") == "true"
    return Settings(
        python=python,
        recipe=recipe,
        manifests_dir=manifests_dir,
        store=store,
        cache_dir=locations.cache_dir(env),
        dist_dir=Path(flags.get("dist") or env.get("SAGE_DIST") or "dist").absolute(),
        arch=wanted_archs,
        arch_origin=arch_origin,
        stack=flags.get("stack") or env.get("SAGE_STACK") or None,
        default_stack=default_stack,
        source=flags.get("source") or env.get("SAGE_SOURCE_DIR") or None,
        max_jobs=_int(env, "MAX_JOBS"),
        ext_parallel=_int(env, "EXT_PARALLEL"),
        wheel_url=env.get("WHEEL_URL", "").strip() or None,
        wheel_sha256=(env.get("WHEEL_SHA256", "").strip().lower() or None),
        allow_unsafe_wheel=env.get("ALLOW_UNSAFE_WHEEL", "0").strip().lower() in TRUE,
        # one named switch for http:// and file:// URLs (SAGE_ALLOW_HTTP: its older name)
        allow_http=any(
            env.get(name, "0").strip().lower() in TRUE for name in ("SAGE_ALLOW_INSECURE_URLS", "SAGE_ALLOW_HTTP")
        ),
        env=env,
        verbose=bool(flags.get("verbose")),
        recipe_origin=recipe_origin,
        default_recipes=(defaults["recipe"], *defaults.get("recipe_fallbacks", ())),
        installer=installer,
        keep_stack=bool(flags.get("keep_stack")) or env.get("SAGE_KEEP_STACK", "0").strip().lower() in TRUE,
        progress=bool(flags.get("progress")) and not in_ci,
        python_origin=python_origin,
        build_timeout=_timeout(flags.get("timeout")),
    )
