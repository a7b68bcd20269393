#!/usr/bin/env bash
# (Ran before SAGE_GPU_RECIPE existed: it then named SAGE_RECIPE, which the tests scrub, so
# the default recipe's metadata went with the d1a57a5 source.)
# Device proof, part 5 (H100): the same GPU flow as part 2 for upstream main d1a57a5 (which
# carries the sm90 fix), to show which ref passes the gate where v2.2.0 fails.
set -u
. bench/device_setup.sh
start=$(date +%s)
SAGE_GPU_RECIPE=sageattention-2.2.0-d1a57a5 SAGE_SOURCE_DIR="$PWD/.upstream/d1a57a5" SAGE_PROOF_DIR="$OUT" timeout 570 \
  python3 -m pytest -v -p no:cacheprovider "tests/test_gpu.py::test_build_check_publish_then_fetch_into_a_fresh_environment" 2>&1 | tail -25
echo "pytest wall: $(( $(date +%s) - start )) s"
for f in "$OUT"/gpu-auto-*-kernel-report.json; do [ -f "$f" ] && python3 bench/kernel_table.py "$f"; done
print_stages
