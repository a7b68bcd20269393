"""Pure rules about GPU architectures and CUDA versions.

- compute capabilities are written ``"12.0"``; ``"8.9+PTX"`` also asks for PTX;
- machine code (SASS) is named ``sm_120``; arch-specific code ``sm_90a`` runs only on 9.0;
- ``sm_XY`` machine code runs on every ``X.Z`` with ``Z >= Y``; PTX ``compute_XY`` is compiled
  by the driver for any later GPU (``compute_XYa`` only for X.Y).
"""

from __future__ import annotations

import re

from packaging.version import Version

from .errors import ConfigError

_ARCH = re.compile(r"^(?:sm_|compute_)?(\d{1,2})\.?(\d)([af]?)(\+ptx)?$", re.IGNORECASE)


def normalize_arch(text: str) -> str:
    """``"sm_120"``, ``"120"``, ``"12.0"`` → ``"12.0"``; ``"8.9+PTX"`` keeps its ``+PTX``."""
    match = _ARCH.match(text.strip())
    if not match:
        raise ConfigError(
            f"'{text}' is not a GPU architecture",
            "write compute capabilities like 12.0 (RTX 5090), 9.0 (H100), 8.9 (RTX 4090), 8.0 (A100)",
        )
    major, minor, _variant, ptx = match.groups()
    return f"{int(major)}.{minor}" + ("+PTX" if ptx else "")


def parse_arch_list(text: str | None) -> tuple[str, ...]:
    """Split ``TORCH_CUDA_ARCH_LIST``-style text (``;``, ``,`` or spaces) into normalized archs."""
    if not text:
        return ()
    items = [p for p in re.split(r"[;,\s]+", text.strip()) if p]
    return tuple(dict.fromkeys(normalize_arch(p) for p in items))


def base_arch(arch: str) -> str:
    return arch.split("+", 1)[0]


def cc_tuple(cc: str) -> tuple[int, int]:
    major, minor = base_arch(cc).split(".")
    return int(major), int(minor)


def sm_number(cc: str) -> int:
    major, minor = cc_tuple(cc)
    return major * 10 + minor


def parse_binary_arch(name: str) -> tuple[str, int, str]:
    """``"sm_90a"`` → ``("sm", 90, "a")``; ``"compute_120"`` → ``("compute", 120, "")``."""
    match = re.fullmatch(r"(sm|compute)_(\d+)([af]?)", name)
    if not match:
        raise ValueError(f"not a CUDA binary arch name: {name}")
    return match.group(1), int(match.group(2)), match.group(3)


def runs_on(binary_arch: str, cc: str) -> bool:
    """Whether code for ``binary_arch`` (``sm_90a``, ``compute_80``...) runs on a GPU of ``cc``."""
    kind, number, variant = parse_binary_arch(binary_arch)
    major, minor = cc_tuple(cc)
    want = major * 10 + minor
    if variant == "a":
        return number == want
    if kind == "compute":
        return want >= number
    code_major, code_minor = divmod(number, 10)
    return code_major == major and minor >= code_minor  # plain and family ("f") code alike


def sass_runs_on(sass: str, cc: str) -> bool:
    return sass.startswith("sm_") and runs_on(sass, cc)


def satisfies(binary_archs: set[str] | frozenset[str] | tuple[str, ...], arch: str) -> bool:
    """Whether a set of machine-code archs contains code for the requested compute capability."""
    return any(sass_runs_on(a, base_arch(arch)) for a in binary_archs if a.startswith("sm_"))


# ---------------------------------------------------------------- CUDA versions


def cuda_tuple(text: str) -> tuple[int, int]:
    parts = text.strip().split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def flavor_from_cuda(cuda: str | None) -> str:
    """``"12.8"`` → ``"cu128"``; None → ``"cpu"``."""
    if not cuda:
        return "cpu"
    major, minor = cuda_tuple(cuda)
    return f"cu{major}{minor}"


def cuda_from_flavor(flavor: str | None) -> str | None:
    """``"cu128"`` → ``"12.8"``, ``"cu130"`` → ``"13.0"``; anything else → None."""
    match = re.fullmatch(r"cu(\d{1,2})(\d)", flavor or "")
    return f"{int(match.group(1))}.{match.group(2)}" if match else None


def flavor_from_index_url(url: str | None) -> str | None:
    """``https://download.pytorch.org/whl/cu128`` → ``"cu128"`` (also ``.../nightly/cu128``)."""
    if not url:
        return None
    last = url.rstrip("/").rsplit("/", 1)[-1]
    return last if re.fullmatch(r"cu\d{3}|cpu|rocm[\d.]+|xpu", last) else None


def public_version(version: str) -> str:
    return Version(version).public


def wheel_local_label(torch_version: str, torch_cuda: str | None) -> str:
    """PEP 440 local label naming torch and its CUDA: ``cu128torch2.8.0``."""
    return f"{flavor_from_cuda(torch_cuda)}torch{public_version(torch_version)}"


def driver_supports(driver_cuda: str | None, needed_cuda: str | None) -> bool | None:
    """Whether a driver whose highest CUDA is ``driver_cuda`` runs code built with ``needed_cuda``.

    CUDA's minor-version compatibility lets a 12.x driver run 12.y code that carries machine
    code (our wheels always do), so the major version decides. None if either is unknown.
    """
    if not driver_cuda or not needed_cuda:
        return None
    return cuda_tuple(driver_cuda)[0] >= cuda_tuple(needed_cuda)[0]
