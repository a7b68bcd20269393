"""Wheel stores: a local directory (the default) or a Hugging Face Hub repository."""

from __future__ import annotations

from collections.abc import Mapping

from ..settings import StoreConfig
from .base import CommitResult, Store, Update
from .local import LocalStore

__all__ = ["CommitResult", "LocalStore", "Store", "Update", "open_store"]


def open_store(config: StoreConfig, env: Mapping[str, str]) -> Store:
    if config.kind == "hub":
        from .hub import HubStore  # imports huggingface_hub, which takes a while

        return HubStore(config, env)
    return LocalStore(config.local_dir, config.remote_dir, config.preferred_arch)
