#!/usr/bin/env bash
# Device proof, part 2 (H100): the GPU test flow for arch 9.0 -- build, install into a fresh
# environment, full kernel test, publish, fetch into another fresh environment, quick test --
# plus the accuracy-gate tests; memory sampled during the run. Results under $OUT.
set -u
. bench/device_setup.sh
(while sleep 1; do awk '/MemAvailable/ {print $2}' /proc/meminfo; done > /tmp/mem.log) &
SAMPLER=$!
start=$(date +%s)
SAGE_SOURCE_DIR="$PWD/.upstream/v2.2.0" SAGE_PROOF_DIR="$OUT" timeout 560 python3 -m pytest -v -p no:cacheprovider \
  "tests/test_gpu.py::test_build_check_publish_then_fetch_into_a_fresh_environment" tests/test_kernel_gate.py 2>&1 | tail -40
echo "pytest wall: $(( $(date +%s) - start )) s"
kill $SAMPLER
python3 -c "v=[int(x) for x in open('/tmp/mem.log') if x.strip()]; print(f'memory: peak use {(max(v)-min(v))//1024} MiB above the idle level ({len(v)} samples)')"
for f in "$OUT"/gpu-auto-*-kernel-report.json; do [ -f "$f" ] && python3 bench/kernel_table.py "$f"; done
print_stages
