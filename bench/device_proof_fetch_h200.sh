# Ran on the device machine from the repository root with .whl/ (invoke, installer, uv, requests...
# wheels) and .devrun/ carried: .devrun/tree (a `git archive HEAD` export of the commit under test),
# .devrun/kc_before.py (the quick check before issue 10's gate) and .devrun/real/ (the wheel that
# bench/device_proof_final_h200.sh built, d1a57a5 for 9.0).
#  1. `invoke fetch` of that wheel (WHEEL_URL, file:// allowed, its sha256 given) into the machine's
#     own torch environment: checked, staged, journalled, read back, quick-checked, committed;
#  2. the quick check before issue 10's gate vs today's, 10 pairs, alternating (A B B A ...);
#  3. the install transaction's cost on this machine's disk and on tmpfs, the synthetic wheel and
#     the real one (bench/install_journal_cost.py).
set -u
R=$PWD; cd .devrun/tree || exit 1
export PYTHONUNBUFFERED=1 SAGE_STORE=/tmp/store
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $R/.whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
whl=$(ls $R/.devrun/real/*.whl | head -1)
python3 -m pip freeze 2>/dev/null | sort > /tmp/freeze-before.txt
s=$(date +%s)
SAGE_ALLOW_INSECURE_URLS=1 WHEEL_URL=file://$whl WHEEL_SHA256=$(sha256sum $whl | cut -d' ' -f1) \
  timeout 200 python3 -m invoke fetch --json > $OUT/fetch.json 2> $OUT/fetch.log
echo "fetch exit $? in $(( $(date +%s) - s )) s"; tail -15 $OUT/fetch.log; head -c 1500 $OUT/fetch.json; echo
python3 -m pip freeze 2>/dev/null | sort | diff /tmp/freeze-before.txt - ; echo "(pip freeze diff above)"
mkdir -p /tmp/kc && cp sage_tasks/target/kernel_check.py sage_tasks/target/gate_metrics.py /tmp/kc/
python3 - "$R/.devrun/kc_before.py" /tmp/kc/kernel_check.py "$OUT/quick-ab.json" <<'PY'
import json, statistics, subprocess, sys, time
before, now, out = sys.argv[1:4]
runs = {"before": [], "now": []}
order = ["before", "now", "now", "before"] * 5
for i, which in enumerate(order):
    s = time.perf_counter()
    p = subprocess.run([sys.executable, before if which == "before" else now, "--report", f"/tmp/q{i}.json", "--quick"], capture_output=True, text=True)
    runs[which].append(round(time.perf_counter() - s, 3))
    if p.returncode:
        print(which, "exit", p.returncode, p.stdout[-300:], p.stderr[-300:])
med = {k: statistics.median(v) for k, v in runs.items()}
pairs = [runs["now"][i] / runs["before"][i] for i in range(len(runs["now"]))]
print("quick check wall s:", json.dumps(runs), "medians", med, "ratio of medians now/before", round(med["now"] / med["before"], 3), "median of pair ratios", round(statistics.median(pairs), 3))
json.dump({"runs": runs, "medians": med, "order": order, "pair_ratios": pairs}, open(out, "w"), indent=1)
PY
for work in /tmp/jc /dev/shm/jc; do
  timeout 60 python3 bench/install_journal_cost.py --runs 9 --work $work 2>&1 | tail -4
  timeout 60 python3 bench/install_journal_cost.py --runs 9 --work ${work}r --real $whl 2>&1 | tail -3
done
ls -la $OUT
