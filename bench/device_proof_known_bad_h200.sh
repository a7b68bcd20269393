# Ran on the device machine from the repository root with .upstream/ (upstream exports), .whl/ (invoke,
# installer, uv wheels) and .devrun/tree (a `git archive HEAD` export of the commit under test) carried.
# Final GPU proof, part 2 (H200): upstream v2.2.0 forced on 9.0 must be refused by the gate with the
# environment left as it was; without the flag it is refused up front. Beside it, a cross-build for
# 12.0 (no 12.0 GPU here), published only as unverified with 12.0 marked unproven.
set -u
R=$PWD; cd .devrun/tree || exit 1
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $R/.whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
snap() { python3 - "$1" <<'PY'
import hashlib, sys, sysconfig
from pathlib import Path
site = Path(sysconfig.get_paths()["purelib"])
h = hashlib.sha256()
n = 0
for p in sorted(site.rglob("*")):
    if p.is_file() and "__pycache__" not in p.parts and ".sage-tasks" not in str(p):
        st = p.stat(); n += 1
        h.update(f"{p.relative_to(site)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        if "sageattention" in str(p.relative_to(site)).split("/")[0]:
            h.update(p.read_bytes())
Path(sys.argv[1]).write_text(f"{n} files, sha256 of (path, size, mtime) {h.hexdigest()}\n")
PY
}
timeout 60 python3 -m invoke auto --recipe sageattention-2.2.0 --source $R/.upstream/v2.2.0 --dry-run > $OUT/refused-upfront.txt 2>&1; echo "v2.2.0 without the flag: exit $?"; tail -3 $OUT/refused-upfront.txt
( SAGE_TASKS_CACHE=/tmp/c120 MAX_JOBS=3 EXT_PARALLEL=4 timeout 520 nice -n 19 python3 -m invoke build --arch 12.0 --recipe sageattention-2.2.0 --allow-known-bad --source $R/.upstream/v2.2.0 --dist /tmp/d120 > $OUT/build120.log 2>&1; echo "build 12.0 exit $?" >> $OUT/build120.log
  SAGE_STORE=/tmp/st120 python3 -m invoke publish --dist /tmp/d120 --all --allow-unverified >> $OUT/build120.log 2>&1; echo "publish exit $?" >> $OUT/build120.log
  SAGE_STORE=/tmp/st120 python3 -m invoke fetch --dry-run >> $OUT/build120.log 2>&1; echo "fetch on 9.0 exit $?" >> $OUT/build120.log
  cp /tmp/st120/sageattention/index.json $OUT/index120.json 2>/dev/null ) &
snap $OUT/site-before.txt
s=$(date +%s)
MAX_JOBS=6 EXT_PARALLEL=4 timeout 500 python3 -m invoke auto --recipe sageattention-2.2.0 --allow-known-bad --source $R/.upstream/v2.2.0 --report $OUT/auto-v220.json > $OUT/auto-v220.log 2>&1
echo "v2.2.0 forced: exit $? in $(( $(date +%s) - s )) s"; grep -v "compiling\|still building" $OUT/auto-v220.log | tail -20
snap $OUT/site-after.txt; echo "site-packages before: $(cat $OUT/site-before.txt)"; echo "site-packages after:  $(cat $OUT/site-after.txt)"
python3 -c "import sageattention" 2>&1 | tail -1
wait
grep -v "compiling\|still building" $OUT/build120.log | tail -15
ls -la $OUT
