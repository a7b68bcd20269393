"""Which installer puts the torch stack into the target: uv when it can run, pip as fallback.

uv reads none of pip's configuration, so the effective pip settings (``pip config list``: the
configuration files and the ``PIP_*`` variables) are translated into uv flags; a setting that
has no uv equivalent makes the choice fall back to pip, and the choice says why. The stack's
torch index always wins for torch/torchvision/torchaudio/triton: with uv it is the
highest-priority index (uv takes a package from the first index that has it), with pip it is
``--index-url`` (as before). Everything here except ``find_uv`` and ``pip_config`` is pure.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..core import runner

log = logging.getLogger(__name__)

CHOICES = ("uv", "pip")
ENV_VAR = "SAGE_INSTALLER"
# pip settings with a uv equivalent (flag or variable)
TRANSLATED = {"index-url", "extra-index-url", "find-links", "no-index", "constraint", "cert", "timeout",
              "default-timeout"}  # fmt: skip
# pip settings that do not change what gets installed
IGNORED = {
    "disable-pip-version-check", "no-input", "progress-bar", "quiet", "verbose", "cache-dir", "no-cache-dir",
    "root-user-action", "no-warn-script-location", "retries", "require-virtualenv", "break-system-packages",
    "no-color", "log", "exists-action", "upgrade-strategy", "config-file",
}  # fmt: skip


@dataclass(frozen=True)
class Choice:
    tool: str  # "uv" or "pip"
    reason: str
    uv: str | None = None  # path of the uv binary when tool == "uv"
    pip_settings: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"tool": self.tool, "reason": self.reason}


# ---------------------------------------------------------------- pure


def parse_pip_config_list(text: str) -> dict[str, str]:
    """``pip config list`` → effective setting per key (``global`` < command sections < ``:env:``)."""
    ranked: dict[str, tuple[int, str]] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if not sep or "." not in name:
            continue
        section, _, key = name.strip().rpartition(".")
        if section not in ("global", "install", "download", ":env:"):
            continue
        rank = {"global": 0, ":env:": 2}.get(section, 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key not in ranked or rank >= ranked[key][0]:
            ranked[key] = (rank, value)
    return {k: v for k, (_, v) in ranked.items()}


def untranslatable(pip_settings: Mapping[str, str]) -> list[str]:
    return sorted(k for k in pip_settings if k not in TRANSLATED and k not in IGNORED)


def choose(forced: str | None, uv: str | None, pip_settings: Mapping[str, str]) -> Choice:
    """uv unless forced to pip, uv cannot run, or pip's configuration has no uv equivalent."""
    if forced == "pip":
        return Choice("pip", "forced (--installer pip or SAGE_INSTALLER=pip)", None, pip_settings)
    if uv is None:
        why = "uv was not found" + (" (--installer uv asked for it)" if forced == "uv" else "")
        return Choice("pip", why, None, pip_settings)
    blocking = untranslatable(pip_settings)
    if blocking and forced != "uv":
        return Choice(
            "pip", f"pip's configuration sets {', '.join(blocking)}, which uv has no equivalent for", None, pip_settings
        )
    reason = "forced (--installer uv or SAGE_INSTALLER=uv)" if forced == "uv" else "uv is available"
    return Choice("uv", reason, uv, pip_settings)


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").split() if v]


def uv_index_args(torch_index: str | None, pip_settings: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
    """uv flags for the same indexes pip gets: pip's command names the torch index as
    ``--index-url`` (it replaces the user's, and PyPI), the user's extra indexes still apply.
    uv takes a package from the first index that has it, so the torch index also goes first."""
    args: list[str] = []
    user_extras = _split(pip_settings.get("extra-index-url"))
    uv_extras = _split(env.get("UV_EXTRA_INDEX_URL")) + _split(env.get("UV_INDEX"))
    extras = [url for url in dict.fromkeys([*user_extras, *uv_extras]) if url != torch_index]
    if torch_index:
        if extras:
            args += ["--extra-index-url", torch_index]
        for url in extras:
            args += ["--extra-index-url", url]
        args += ["--index-url", torch_index]
    else:
        for url in extras:
            args += ["--extra-index-url", url]
        if pip_settings.get("index-url") and not (env.get("UV_DEFAULT_INDEX") or env.get("UV_INDEX_URL")):
            args += ["--index-url", pip_settings["index-url"]]
    for link in _split(pip_settings.get("find-links")):
        args += ["--find-links", link]
    if pip_settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    for constraint in _split(pip_settings.get("constraint")):
        args += ["--constraint", constraint]
    return args


def uv_env(pip_settings: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    extra: dict[str, str] = {}
    if pip_settings.get("cert") and "SSL_CERT_FILE" not in env:
        extra["SSL_CERT_FILE"] = pip_settings["cert"]
    timeout = pip_settings.get("default-timeout") or pip_settings.get("timeout")
    if timeout and "UV_HTTP_TIMEOUT" not in env:
        extra["UV_HTTP_TIMEOUT"] = timeout.split(".")[0]
    return {**env, **extra}


def uv_install_command(
    uv: str, python: str, specs: Sequence[str], index_args: Sequence[str], *, reinstall: bool, quiet: bool
) -> list[str]:
    args = [uv, "pip", "install", "--python", python, *specs, *index_args]
    if reinstall:
        args.append("--reinstall")
    if quiet:
        args.append("--no-progress")
    return args


def pip_download_command(
    python: str, specs: Sequence[str], folder: str, index_url: str | None, *, quiet: bool
) -> list[str]:
    args = [python, "-m", "pip", "download", "--disable-pip-version-check", "--no-input", "-d", folder, *specs]
    if index_url:
        args += ["--index-url", index_url]
    if quiet:
        args += ["--progress-bar", "off"]
    return args


def pip_install_command(python: str, specs: Sequence[str], folder: str, *, reinstall: bool, quiet: bool) -> list[str]:
    """Install from the downloaded folder only: nothing is fetched once the environment changes."""
    args = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-index",
            "--find-links", folder, *specs]  # fmt: skip
    if reinstall:
        args.append("--force-reinstall")
    if quiet:
        args += ["--progress-bar", "off"]
    return args


# ---------------------------------------------------------------- I/O


def find_uv(env: Mapping[str, str]) -> str | None:
    """The uv binary of the `uv` package we depend on, else one on PATH."""
    try:
        import uv as uv_package  # the PyPI package ships the binary next to this interpreter

        path = uv_package.find_uv_bin()
        if path and os.access(path, os.X_OK):
            return path
    except (ImportError, FileNotFoundError):
        pass
    return runner.which("uv", env) or shutil.which("uv")


def pip_config(python: str, env: Mapping[str, str]) -> dict[str, str]:
    """pip's effective configuration for the target (its files and the PIP_* variables)."""
    from ..core.errors import SageTasksError

    for interpreter in dict.fromkeys([python, _self()]):
        try:
            done = runner.run([interpreter, "-m", "pip", "config", "list"], env=env, check=False, echo=False)
        except SageTasksError:
            continue
        if done.returncode == 0:
            return parse_pip_config_list(done.stdout)
    return {}


def _self() -> str:
    import sys

    return sys.executable


def resolve(forced: str | None, python: str, env: Mapping[str, str]) -> Choice:
    uv = None if forced == "pip" else find_uv(env)
    choice = choose(forced, uv, pip_config(python, env))
    log.info("installer: %s (%s)", choice.tool, choice.reason)
    return choice


def uv_variables(pip_settings: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """pip's effective configuration as uv's own variables, for installs we do not drive
    (nox's uv backend); a variable the user set for uv wins."""
    extra = " ".join(_split(pip_settings.get("extra-index-url")))
    wanted = {
        "UV_INDEX_URL": pip_settings.get("index-url", ""),
        "UV_EXTRA_INDEX_URL": extra,
        # pip takes the best version from all of its indexes; uv by default stops at the first index
        # that knows the project (and may find no wheel for this Python there)
        "UV_INDEX_STRATEGY": "unsafe-best-match" if extra else "",
        "UV_FIND_LINKS": ",".join(_split(pip_settings.get("find-links"))),
        "UV_CONSTRAINT": " ".join(_split(pip_settings.get("constraint"))),
        "SSL_CERT_FILE": pip_settings.get("cert", ""),
    }
    return {k: v for k, v in wanted.items() if v and k not in env}
