"""Wheel stores: a local directory (the default) or a Hugging Face Hub repository."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .base import CommitResult, Store, Update
from .local import LocalStore

if TYPE_CHECKING:  # settings reads the store's path rules: no import of it at run time
    from ..core.settings import StoreConfig

__all__ = ["CommitResult", "LocalStore", "Store", "Update", "open_store"]


def open_store(config: StoreConfig, env: Mapping[str, str]) -> Store:
    if config.kind == "hub":
        from .hub import HubStore  # imports huggingface_hub, which takes a while

        return HubStore(config, env)
    return LocalStore(config.local_dir, config.remote_dir, config.preferred_arch)
