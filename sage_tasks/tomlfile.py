"""Read committed TOML files strictly: unknown keys are errors with a did-you-mean hint."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError


def load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}", "fix the file or restore it with git") from e


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(choices))}"


def check_keys(table: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    allowed = set(allowed)
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key '{key}' in {where}", did_you_mean(key, allowed))


def require(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where} has no '{key}'", f"add {key} = ... to {where}")
    value = table[key]
    if not isinstance(value, kind):
        raise ConfigError(f"'{key}' in {where} must be a {kind.__name__}, not {type(value).__name__}")
    return value
