#!/usr/bin/env bash
# Device proof, part 1 (H100): probe; upstream vs sage-tasks build time for arch 12.0 in one
# run; binary arch listing (our ELF reader vs cuobjdump); fetch on the H100 rejecting the
# RTX 5090 wheel. Writes results under $OUT.
set -u
. bench/device_setup.sh
nvidia-smi > "$OUT/nvidia-smi.txt"; nproc; grep -E "MemTotal|MemAvailable" /proc/meminfo; which nvcc cuobjdump ninja
python3 -m pip list 2>/dev/null | grep -iE "^(torch|torchvision|torchaudio|triton|setuptools|wheel|packaging|ninja|invoke|pytest|requests|huggingface)[ _-]"
python3 -m invoke probe
python3 -m invoke probe --json > "$OUT/probe.json"
python3 bench/build.py compare --source .upstream/v2.2.0 --arch 12.0 --out "$OUT/build-compare-120.json" --work /tmp/b120
W=$(ls /tmp/b120/our-dist/*.whl | head -1)
python3 -m invoke binaries "$W"
python3 -m invoke binaries "$W" --json > "$OUT/binaries-elf.json"
python3 -m invoke binaries "$W" --cuobjdump --json > "$OUT/binaries-cuobjdump.json"
python3 -c "import json; a=json.load(open('$OUT/binaries-elf.json')); b=json.load(open('$OUT/binaries-cuobjdump.json')); print('ELF reader == cuobjdump' if a == b else f'DIFFER: {a} vs {b}')"
python3 -c "import zipfile; z=zipfile.ZipFile('$W'); [z.extract(n, '/tmp/so') for n in z.namelist() if n.endswith('.so')]"
for so in /tmp/so/sageattention/*.so; do echo "== $(basename $so)"; cuobjdump --list-elf --list-ptx "$so"; done > "$OUT/cuobjdump-list-sm120.txt" 2>&1
cp "$W.json" "$OUT/manifest-sm120.json"
SAGE_STORE=/tmp/st python3 -m invoke publish --wheel "$W" --allow-unverified
SAGE_STORE=/tmp/st python3 -m invoke fetch --dry-run > "$OUT/fetch-reject.txt" 2>&1; echo "fetch exit=$?" >> "$OUT/fetch-reject.txt"
cat "$OUT/fetch-reject.txt"
tail -c 20000 /tmp/b120/ours.log > "$OUT/ours-tail.log"; tail -c 20000 /tmp/b120/upstream.log > "$OUT/upstream-tail.log"
