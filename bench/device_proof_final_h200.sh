# Ran on the device machine from the repository root with .upstream/ (upstream exports), .whl/ (invoke,
# installer, uv, requests... wheels) and .devrun/tree (a `git archive HEAD` export of the commit under
# test) carried; .devrun/kc_before.py is the quick check as it was before issue 10's gate.
# GPU proof after the layout move (issue 12) and with the gate's final limits (issue 10):
#  1. `invoke auto` with no recipe flag (source given: no network; torch the machine's own): build,
#     transactional install, the full gate run from the copy of sage_tasks/target/, publish;
#  2. the quick check before issue 10's gate vs today's, same machine and Triton cache, alternating
#     (A B B A ...), wall seconds per process;
#  3. where today's quick check spends its seconds (bench/quick_check_split.py);
#  4. the built wheel back in two parts (for later calls).
set -u
R=$PWD; cd .devrun/tree || exit 1
export PYTHONUNBUFFERED=1 SAGE_STORE=/tmp/store
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $R/.whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader
python3 -m pip freeze 2>/dev/null | sort > /tmp/freeze-before.txt
s=$(date +%s)
timeout 430 python3 -m invoke auto --source $R/.upstream/d1a57a5 --report $OUT/auto.json > $OUT/auto.log 2>&1
echo "auto exit $? in $(( $(date +%s) - s )) s"; grep -v "compiling\|still building" $OUT/auto.log | tail -22
python3 -m pip freeze 2>/dev/null | sort | diff /tmp/freeze-before.txt - ; echo "(pip freeze diff above)"
whl=$(find /tmp/store -name 'sageattention-*.whl' | head -1)
[ -n "$whl" ] && { echo "wheel: $(basename $whl) $(stat -c %s $whl) bytes"; basename $whl > $OUT/wheel-name.txt; split -b 15M $whl $OUT/wheel.part-; }
mkdir -p /tmp/kc && cp sage_tasks/target/kernel_check.py sage_tasks/target/gate_metrics.py /tmp/kc/
python3 - "$R/.devrun/kc_before.py" /tmp/kc/kernel_check.py "$OUT/quick-ab.json" <<'PY'
import json, statistics, subprocess, sys, time
before, now, out = sys.argv[1:4]
runs = {"before": [], "now": []}
order = ["before", "now", "now", "before"] * 2
for i, which in enumerate(order):
    script = before if which == "before" else now
    s = time.perf_counter()
    p = subprocess.run([sys.executable, script, "--report", f"/tmp/q{i}.json", "--quick"], capture_output=True, text=True)
    runs[which].append(round(time.perf_counter() - s, 3))
    if p.returncode:
        print(which, "exit", p.returncode, p.stdout[-300:], p.stderr[-300:])
med = {k: statistics.median(v) for k, v in runs.items()}
print("quick check wall s:", json.dumps(runs), "medians", med, "ratio now/before", round(med["now"] / med["before"], 3))
json.dump({"runs": runs, "medians": med, "order": order}, open(out, "w"), indent=1)
PY
timeout 120 python3 bench/quick_check_split.py --check /tmp/kc/kernel_check.py --cpu-metrics --json $OUT/quick-split.json
ls -la $OUT
