"""``init-hf``: create the Hub repo if missing, check the token's identity and write access, and
keep a dataset card that explains the layout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..core.errors import StoreError
from ..core.settings import StoreConfig
from .hub import HubStore

log = logging.getLogger(__name__)


CARD = """---
pretty_name: SageAttention wheels
tags:
- sageattention
- wheels
---
# SageAttention wheels built by sage-tasks

Prebuilt SageAttention wheels, each for one exact torch build, Python version and GPU arch,
published by [sage-tasks](https://github.com/) after a kernel test on the target GPU.

## Layout
```
{root}/index.json                  every wheel's manifest (read once to choose a wheel)
{root}/latest.json                 the bash installer's pointer: only a wheel it accepts on an RTX 5090
{root}/wheels/<wheel file>
{root}/manifests/<wheel file>.json
```
A manifest records the wheel's sha256 and size, its Python/ABI/platform tags, the torch,
torchvision, torchaudio and triton versions and torch index it was built against, torch's CUDA
and C++11 ABI, the GPU archs its binaries carry, the source commit, and the kernel test verdict.

## Install from here
```bash
export HF_REPO_ID={repo_id}   # plus HF_TOKEN if the repo is private
invoke auto                   # pins the stack, fetches the matching wheel, checks it on the GPU
```
`invoke fetch --dry-run` shows which wheel fits the machine and why the others do not.
Never install a wheel from here with plain pip unless torch, CUDA and the GPU arch match its manifest.
Wheels named `sageattention-2.2.0-<build tag>-…` are plain-version twins of the labelled ones (same
binaries) for machines still running the bash installer, which requires the version `2.2.0` exactly.
"""


def init_repo(config: StoreConfig, env: Mapping[str, str], *, dry_run: bool = False) -> dict[str, Any]:
    """Create the repo if missing (idempotent), check the token's identity and write access,
    and keep a dataset card explaining the layout. Reports what it found and did."""
    from huggingface_hub import CommitOperationAdd

    store = HubStore(config, env)
    if not store.token:
        raise StoreError("init-hf needs a token", "set HF_TOKEN (a write token for the repo's namespace)")
    who = store._retrying("checking the token (whoami)", lambda: store.api.whoami(token=store.token))
    user = who.get("name")
    role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise StoreError(f"the token of {user} is read-only", "create a write (or fine-grained with write) token")
    namespace = store.repo_id.split("/", 1)[0]
    orgs = {o.get("name") for o in who.get("orgs") or [] if isinstance(o, dict)}
    if namespace != user and namespace not in orgs:
        log.warning(
            "%s is neither %s nor one of their organizations: creating or writing may be refused", namespace, user
        )
    exists = store.repo_exists()
    report: dict[str, Any] = {
        "repo": store.repo_id,
        "type": store.repo_type,
        "endpoint": store.endpoint,
        "user": user,
        "token_role": role or "unknown",
        "existed": exists,
        "dry_run": dry_run,
    }
    if not exists:
        report["action"] = f"would create ({'private' if config.private else 'public'})" if dry_run else "created"
        if not dry_run:
            store._retrying(
                f"creating {store.repo_id}",
                lambda: store.api.create_repo(
                    store.repo_id, repo_type=store.repo_type, private=config.private, exist_ok=True
                ),
            )
    card = CARD.format(root=store.root, repo_id=store.repo_id).encode()
    current = None if not exists else store.read_bytes("README.md")
    if current == card:
        report["card"] = "up to date"
    elif dry_run:
        report["card"] = "would write"
    else:
        store._retrying(
            f"writing the card of {store.repo_id}",
            lambda: store.api.create_commit(
                store.repo_id,
                operations=[CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card)],
                commit_message="sage-tasks: dataset card",
                repo_type=store.repo_type,
                revision=store.revision,
            ),
        )
        report["card"] = "written"
    if exists or not dry_run:
        info = store._retrying(
            "reading the repo", lambda: store.api.repo_info(store.repo_id, repo_type=store.repo_type)
        )
        report["private"] = bool(getattr(info, "private", False))
        report["head"] = info.sha
        report["index"] = f"{len(store.read_index().wheels)} wheel(s) under {store.root}/"
    return report
