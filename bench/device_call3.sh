#!/usr/bin/env bash
# Device proof, part 3 (H100): upstream vs sage-tasks build for 12.0 again, sage-tasks first
# this time (part 1 ran upstream first), to see the order's share of the difference.
set -u
. bench/device_setup.sh
python3 bench/build.py compare --order ours-first --source .upstream/v2.2.0 --arch 12.0 --out "$OUT/build-compare-120-ours-first.json" --work /tmp/c3
grep -E "compiler jobs|MAX_JOBS" /tmp/c3/ours.log | head -3
