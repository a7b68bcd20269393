# Ran on the device machine from the repository root with .upstream/ (upstream exports), .whl/ (invoke,
# installer, uv wheels) and .devrun/tree (a `git archive HEAD` export of the commit under test) carried.
# Final GPU proof, part 1 (H200): `invoke auto` with no recipe flag (source given: no network; torch the
# machine's own), then the gate's calibration over 20 seeds with the controls on real inputs, then the
# quick check's parts after. Everything lands under $OUT.
set -u
R=$PWD; cd .devrun/tree || exit 1
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $R/.whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
python3 -m pip freeze 2>/dev/null | sort > $OUT/freeze-before.txt
python3 -m invoke probe > $OUT/probe.txt 2>&1; tail -5 $OUT/probe.txt
s=$(date +%s)
timeout 400 python3 -m invoke auto --source $R/.upstream/d1a57a5 --report $OUT/auto.json > $OUT/auto.log 2>&1
echo "auto exit $? in $(( $(date +%s) - s )) s"; grep -v "compiling\|still building" $OUT/auto.log | tail -25
python3 -m pip freeze 2>/dev/null | sort | diff $OUT/freeze-before.txt - ; echo "freeze diff above"
mkdir -p /tmp/kc && cp sage_tasks/target/kernel_check.py sage_tasks/target/gate_metrics.py /tmp/kc/
PY=python3
if ! python3 -c "import sageattention" 2>/dev/null; then
  python3 -m venv /tmp/side && PY=/tmp/side/bin/python && python3 -c "from sage_tasks.environment import venvs; venvs.link_site('$PY', 'python3')" && $PY -m pip install -q --no-deps dist/*.whl
fi
s=$(date +%s)
timeout 150 $PY /tmp/kc/kernel_check.py --report $OUT/gate-calibration.json --calibrate --seeds 20 --controls --seed 1000 > $OUT/calib.txt 2>&1
echo "calibrate exit $? in $(( $(date +%s) - s )) s"; tail -45 $OUT/calib.txt
timeout 100 $PY bench/quick_check_parts.py --check /tmp/kc/kernel_check.py --json $OUT/parts-after.json 2>&1 | tail -20
ls -la $OUT
