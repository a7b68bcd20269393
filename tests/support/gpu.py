"""A stand-in ``nvidia-smi`` on PATH that prints a real RTX 5090's output (tests fake only at the
process boundary).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from .paths import CAPTURES

RTX5090 = {
    "index": "0",
    "name": "NVIDIA GeForce RTX 5090",
    "compute_cap": "12.0",
    "driver_version": "570.133.07",
    "memory.total": "32607",
    "pci.bus_id": "00000000:01:00.0",
}


def rtx5090_banner() -> str:
    """The real H100 capture of plain ``nvidia-smi`` with the RTX 5090's name, driver and CUDA."""
    text = (CAPTURES / "h100-cuda13" / "nvidia-smi.txt").read_text()
    text = text.replace("NVIDIA H100 80GB HBM3     ", "NVIDIA GeForce RTX 5090   ")
    text = text.replace("Driver Version: 580.159.04", "Driver Version: 570.133.07")
    text = text.replace("CUDA Version: 13.0", "CUDA Version: 12.8")
    return text.replace("580.159.04", "570.133.07")


def install_fake_nvidia_smi(bin_dir: Path, gpu: dict[str, str] | None = None, banner: str | None = None) -> Path:
    """A stand-in ``nvidia-smi`` on PATH that answers the query forms a real one does."""
    gpu = gpu or RTX5090
    banner = banner if banner is not None else rtx5090_banner()
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""\
            import sys
            GPU = {gpu!r}
            BANNER = {banner!r}
            args = sys.argv[1:]
            query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
            if query is None:
                sys.stdout.write(BANNER)
                sys.exit(0)
            fields = query.split(",")
            fmt = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), "csv")
            missing = [f for f in fields if f not in GPU]
            if missing:
                print(f'Field "{{missing[0]}}" is not a valid field to query.', file=sys.stderr)
                sys.exit(2)
            if "noheader" not in fmt:
                print(", ".join(fields))
            print(", ".join(GPU[f] for f in fields))
            """
        )
    )
    script.chmod(0o755)
    return script
