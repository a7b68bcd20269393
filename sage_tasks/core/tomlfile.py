"""Read committed TOML files strictly: unknown keys are errors with a did-you-mean hint."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import atomic
from .errors import ConfigError


def load(path: Path) -> dict[str, Any]:
    try:
        with atomic.open_regular(path) as handle:
            return tomllib.load(handle)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}", "pass an existing TOML file") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text: {e.reason}", "fix the file or restore it with git") from e
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


def check_types(table: Mapping[str, Any], kinds: Mapping[str, type | tuple[type, ...]], where: str) -> None:
    """Every present key has a value of its kind (``list[str]`` as ``(list, str)``)."""
    for key, kind in kinds.items():
        if key not in table:
            continue
        value = table[key]
        outer, inner = kind if isinstance(kind, tuple) and kind[0] in (list, dict) else (kind, None)
        number = outer in (int, float, (int, float))
        if (
            not isinstance(value, outer)
            or (number and isinstance(value, bool))
            or (outer is list and inner and not all(isinstance(v, inner) for v in value))
            or (outer is dict and inner and not all(isinstance(v, inner) for v in value.values()))
        ):
            wanted = (
                f"a list of {inner.__name__}"
                if outer is list and inner
                else (
                    f"a table of {inner.__name__}"
                    if outer is dict and inner
                    else f"a {getattr(outer, '__name__', 'number')}"
                )
            )
            raise ConfigError(f"'{key}' in {where} must be {wanted}, not {value!r}"[:300], f"fix '{key}' in {where}")
        if number and value <= 0:
            raise ConfigError(f"'{key}' in {where} must be positive, not {value!r}", f"fix '{key}' in {where}")


def names_in(folder: Path) -> list[str]:
    """The names (file stems) of the ``.toml`` files in ``folder``."""
    return sorted(p.stem for p in folder.glob("*.toml"))


def find(name_or_path: str, folder: Path, what: str) -> Path:
    """``name_or_path`` as a path (it ends in ``.toml`` or has a ``/``: it must exist) or as the
    name of a ``.toml`` file in ``folder``; an unknown name gets the nearest known ones as a hint."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
        if not candidate.is_file():
            raise ConfigError(
                f"{what} file {name_or_path} does not exist", f"pass a {what} name or an existing .toml path"
            )
        return candidate
    path = folder / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(
            f"unknown {what} '{name_or_path}'",
            did_you_mean(name_or_path, names_in(folder)) + f" (or a path to a {what} .toml)",
        )
    return path
