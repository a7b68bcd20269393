"""Tiny wheels (plain, demo, stand-in torch stack) and a local PEP 503 index of them."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import textwrap
import zipfile
from importlib import metadata
from pathlib import Path

from .demo import DEMO_CHECK


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(dest: Path, name: str, version: str, files: dict[str, str | bytes], tag: str = "py3-none-any") -> Path:
    """A valid wheel with the given files (plus METADATA, WHEEL and RECORD)."""
    dest.mkdir(parents=True, exist_ok=True)
    norm = name.replace("-", "_")
    dist_info = f"{norm}-{version}.dist-info"
    contents: dict[str, bytes] = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
    contents[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    contents[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: sage-tasks-tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode()
    )
    return _zip_wheel(dest / f"{norm}-{version}-{tag}.whl", contents, dist_info)


def _zip_wheel(path: Path, contents: dict[str, bytes], dist_info: str) -> Path:
    """Write ``contents`` as a wheel, with a RECORD that lists every file and its hash."""
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in contents.items():
        writer.writerow((name, _hash(data), len(data)))
    writer.writerow((f"{dist_info}/RECORD", "", ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in {**contents, f"{dist_info}/RECORD": record.getvalue().encode()}.items():
            zf.writestr(name, data)
    return path


def standin_torch_stack(
    dest: Path,
    torch: str = "2.8.0+cu128",
    vision: str = "0.23.0+cu128",
    audio: str = "2.8.0+cu128",
    triton: str = "3.4.0",
    cuda: str | None = "12.8",
) -> list[Path]:
    """Tiny wheels named torch/torchvision/torchaudio/triton whose installed files look like torch's."""
    init = textwrap.dedent(
        f"""\
        __version__ = {torch!r}


        def compiled_with_cxx11_abi() -> bool:
            return True
        """
    )
    version_py = f"from typing import Optional\n__version__ = {torch!r}\ncuda: Optional[str] = {cuda!r}\nhip = None\n"
    return [
        make_wheel(dest, "torch", torch, {"torch/__init__.py": init, "torch/version.py": version_py}),
        make_wheel(dest, "torchvision", vision, {"torchvision/__init__.py": f"__version__ = {vision!r}\n"}),
        make_wheel(dest, "torchaudio", audio, {"torchaudio/__init__.py": f"__version__ = {audio!r}\n"}),
        make_wheel(dest, "triton", triton, {"triton/__init__.py": f"__version__ = {triton!r}\n"}),
    ]


def build_simple_index(root: Path, wheels: list[Path]) -> str:
    """A PEP 503 index in ``root`` (one folder per project, links with sha256); returns its file:// URL."""
    by_project: dict[str, list[Path]] = {}
    for wheel in wheels:
        project = wheel.name.split("-")[0].replace("_", "-").lower()
        by_project.setdefault(project, []).append(wheel)
    for project, files in by_project.items():
        folder = root / project
        folder.mkdir(parents=True, exist_ok=True)
        links = []
        for wheel in files:
            target = folder / wheel.name
            target.write_bytes(wheel.read_bytes())
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            links.append(f'<a href="{wheel.name}#sha256={digest}">{wheel.name}</a><br/>')
        (folder / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    (root / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n"
        + "\n".join(f'<a href="{p}/">{p}</a><br/>' for p in sorted(by_project))
        + "\n</body></html>\n"
    )
    return root.as_uri()


def repack_installed(dist_name: str, dest: Path) -> Path:
    """A wheel rebuilt from an installed distribution's files (so test venvs get setuptools offline)."""
    dist = metadata.distribution(dist_name)
    files: dict[str, bytes] = {}
    for entry in dist.files or []:
        path = Path(dist.locate_file(entry))
        text = str(entry)
        if (
            text.startswith("..")
            or "__pycache__" in text
            or text.endswith(("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"))
        ):
            continue
        if path.is_file():
            files[text] = path.read_bytes()
    version = dist.version
    norm = dist.metadata["Name"].replace("-", "_")
    dist_info = f"{norm}-{version}.dist-info"
    files = {k: v for k, v in files.items() if not k.endswith(".dist-info/WHEEL")}
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: sage-tasks-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    return _zip_wheel(dest / f"{norm}-{version}-py3-none-any.whl", files, dist_info)


PURE_NATIVE = "def weighted_sum(xs):\n    return float(sum((i + 1) * x for i, x in enumerate(xs)))\n"


def demo_wheel(dest: Path, version: str = "0.1.0+cu128torch2.8.0", tag: str = "py3-none-any") -> Path:
    """A sage-demo wheel without compiled code (a Python ``_native``), for store and fetch tests."""
    return make_wheel(
        dest,
        "sage-demo",
        version,
        {
            "sage_demo/__init__.py": f'__version__ = "{version}"\n',
            "sage_demo/_native.py": PURE_NATIVE,
            "sage_demo/selfcheck.py": DEMO_CHECK,
        },
        tag=tag,
    )


def demo_manifest(wheel: Path, status: str = "passed", **changes):
    """The manifest of a demo wheel as sage-tasks' build would write it; saved beside the wheel."""
    from sage_tasks.store import manifest
    from sage_tasks.store.manifest import Verification, WheelManifest
    from sage_tasks.wheel import wheelfile

    fields = dict(
        package="sage-demo",
        **wheelfile.file_facts(wheel),
        recipe="sage-demo-0.1.0",
        torch_version="2.8.0+cu128",
        torch_cuda="12.8",
        torch_cxx11_abi=True,
        torchvision_version="0.23.0+cu128",
        torchaudio_version="2.8.0+cu128",
        triton_version="3.4.0",
        torch_index_url="https://download.pytorch.org/whl/cu128",
        source={"repo": "file:///demo", "ref": "v0.1.0", "commit": None},
        verification=Verification(status=status, summary=f"demo {status}"),
    )
    fields.update(changes)
    entry = WheelManifest(**fields)
    manifest.write_manifest_file(wheel.with_name(wheel.name + ".json"), entry)
    return entry
