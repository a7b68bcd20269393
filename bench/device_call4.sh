#!/usr/bin/env bash
# Device proof, part 4 (H100): re-runs reuse finished objects. A cold sage-tasks build for
# 12.0, a re-run after it finished, then a build killed after 100 s and its re-run.
set -u
. bench/device_setup.sh
python3 bench/build.py resume --source .upstream/v2.2.0 --arch 12.0 --kill-after 100 --out "$OUT/build-resume-120.json" --work /tmp/c4
tail -5 /tmp/c4/resumed.log
