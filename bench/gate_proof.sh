#!/usr/bin/env bash
# Issue 10's GPU proof, from an interpreter that has a CUDA torch and an installed SageAttention
# (e.g. right after `invoke auto` or the GPU tests built and installed one). Writes into $OUT.
#
#   PY=/path/to/python OUT=/tmp/out bash bench/gate_proof.sh [calibrate|gate|quick|case SEED N PATH]
#
#   calibrate  accuracy only, the full grid x 20 seeds, the distribution of every local metric
#              per path (tile / edge tile / head / tensor), plus the self-test controls on the
#              first seed's real inputs (each control's verdict): $OUT/gate-calibration.json
#   gate       the full gate as `invoke test-kernel` runs it (accuracy, controls, speed)
#   quick      the install-time check (3 cases on sageattn, controls of the first case)
#   case       re-run one case: SEED, case number and kernel path as a failure printed them
set -u
PY=${PY:-python3}
OUT=${OUT:-/tmp/gate-proof}
mkdir -p "$OUT"
# run from a folder of its own (as sage-tasks does): from sage_tasks/ our module names would
# shadow the target's packages
CHECK=$(mktemp -d)/kernel_check.py
cp sage_tasks/target/kernel_check.py sage_tasks/target/gate_metrics.py "$(dirname "$CHECK")"
mode=${1:-calibrate}
start=$(date +%s)
case "$mode" in
  calibrate) timeout 590 "$PY" "$CHECK" --report "$OUT/gate-calibration.json" --calibrate --seeds 20 --controls --seed 1000 ;;
  gate) timeout 590 "$PY" "$CHECK" --report "$OUT/gate-full.json" ;;
  quick) timeout 300 "$PY" "$CHECK" --report "$OUT/gate-quick.json" --quick ;;
  case) timeout 300 "$PY" "$CHECK" --report "$OUT/gate-case.json" --seed "$2" --case "$3" --path "$4" ;;
  *) echo "usage: bench/gate_proof.sh [calibrate|gate|quick|case SEED N PATH]" >&2; exit 2 ;;
esac
code=$?
echo "exit $code, wall $(( $(date +%s) - start )) s"
exit $code
