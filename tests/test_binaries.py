"""Reading SASS/PTX archs from real fatbins that nvcc builds here (CI has nvcc 13.0, no GPU)."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from sage_tasks.core.errors import IntegrityError
from sage_tasks.wheel import binaries
from tests import support

NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
# real nvcc output committed once (tests/fixtures/fatbins/build.sh): hosted CI has no nvcc
FIXTURES = support.REPO / "tests" / "fixtures" / "fatbins"

KERNEL = "__global__ void scale(float* x) { x[threadIdx.x] *= 2.0f; }\n"


def compile_so(tmp: Path, name: str, gencodes: list[str], extra: tuple[str, ...] = ()) -> Path:
    src = tmp / "k.cu"
    src.write_text(KERNEL)
    out = tmp / f"{name}.so"
    args = [NVCC, "-shared", "-Xcompiler", "-fPIC", *extra]
    for code in gencodes:
        args += ["-gencode", code]
    subprocess.run([*args, str(src), "-o", str(out)], check=True, capture_output=True)
    return out


def wheel_with(tmp: Path, sos: dict[str, Path]) -> Path:
    path = tmp / "demo-1.0-cp312-cp312-linux_x86_64.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, so in sos.items():
            zf.write(so, member)
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    return path


@pytest.fixture(scope="module", params=["committed", "fresh"])
def built(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fatbins")
    if request.param == "committed":
        return {name: FIXTURES / f"{name}.so" for name in ("multi", "hopper", "plain90", "compressed")} | {"tmp": tmp}
    if NVCC is None:
        pytest.skip("nvcc is needed to compile fresh fatbins (the committed ones were tested)")
    return {
        "multi": compile_so(
            tmp,
            "multi",
            ["arch=compute_90a,code=sm_90a", "arch=compute_120,code=sm_120", "arch=compute_80,code=compute_80"],
        ),
        "hopper": compile_so(tmp, "hopper", ["arch=compute_90a,code=sm_90a"]),
        "plain90": compile_so(tmp, "plain90", ["arch=compute_90,code=sm_90"]),
        "compressed": compile_so(
            tmp,
            "compressed",
            ["arch=compute_120,code=sm_120", "arch=compute_120,code=compute_120"],
            ("-Xfatbin", "-compress-all"),
        ),
        "tmp": tmp,
    }


def test_each_extension_lists_its_sass_and_ptx(built):
    wheel = wheel_with(built["tmp"], {"demo/_multi.so": built["multi"], "demo/_hopper.so": built["hopper"]})
    listing = binaries.list_wheel(wheel)
    assert listing == {
        "demo/_hopper.so": {"sass": ["sm_90a"], "ptx": []},
        "demo/_multi.so": {"sass": ["sm_120", "sm_90a"], "ptx": ["compute_80"]},
    }
    assert binaries.common_sass(listing) == ["sm_90a"]
    assert binaries.missing(listing, ("9.0",)) == {}
    assert binaries.missing(listing, ("12.0",)) == {"demo/_hopper.so": ["12.0"]}


def test_arch_specific_flag_is_read(built):
    assert binaries.archs_in_elf(built["hopper"].read_bytes()) == ({"sm_90a"}, set())
    assert binaries.archs_in_elf(built["plain90"].read_bytes()) == ({"sm_90"}, set())


def test_compressed_fatbins_still_name_their_archs(built):
    assert binaries.archs_in_elf(built["compressed"].read_bytes()) == ({"sm_120"}, {"compute_120"})


def test_host_only_library_has_no_gpu_code(tmp_path):
    src = tmp_path / "host.c"
    src.write_text("int answer(void) { return 42; }\n")
    so = tmp_path / "host.so"
    subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", str(so)], check=True)
    assert binaries.archs_in_elf(so.read_bytes()) == (set(), set())


def test_not_an_elf_is_an_integrity_error(tmp_path):
    wheel = tmp_path / "demo-1.0-cp312-cp312-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo/_bad.so", b"MZ this is not an ELF file at all")
    with pytest.raises(IntegrityError, match="not a readable ELF"):
        binaries.list_wheel(wheel)


def test_cuobjdump_listing_parser_on_a_real_capture():
    """``cuobjdump --list-elf --list-ptx`` of the three extensions of a 12.0 SageAttention build (H100 host)."""
    text = (support.CAPTURES / "h100-cuda13" / "cuobjdump-list-sm120.txt").read_text()
    per_extension = text.split("== ")[1:]
    assert len(per_extension) == 3
    for block in per_extension:
        assert binaries.parse_cuobjdump(block) == ({"sm_120"}, set())
    assert binaries.parse_cuobjdump("PTX file    1: x.1.sm_80.ptx\nELF file    1: x.1.sm_90a.cubin\n") == (
        {"sm_90a"},
        {"compute_80"},
    )


def test_a_corrupt_fatbin_container_does_not_hang():
    import struct

    empty = struct.pack("<IHHQ", binaries.FATBIN_MAGIC, 1, 0, 0)  # header size 0, payload 0
    assert binaries.parse_fatbin(empty * 3 + b"\0" * 8) == (set(), set())
