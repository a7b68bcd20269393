#!/usr/bin/env bash
# Device proof, part 6 (H100): after the review fixes, the GPU flow again (upstream d1a57a5),
# plus the accuracy-gate tests, to confirm the shipped code still passes on the GPU.
set -u
. bench/device_setup.sh
start=$(date +%s)
SAGE_GPU_RECIPE=sageattention-2.2.0-d1a57a5 SAGE_SOURCE_DIR="$PWD/.upstream/d1a57a5" SAGE_PROOF_DIR="$OUT" timeout 560 \
  python3 -m pytest -v -p no:cacheprovider tests/test_kernel_gate.py \
  "tests/test_gpu.py::test_build_check_publish_then_fetch_into_a_fresh_environment" 2>&1 | tail -25
echo "pytest wall: $(( $(date +%s) - start )) s"
print_stages
