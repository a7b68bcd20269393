# Ran on the device machine from the repository root with .whl/ and .devrun/ carried (see
# bench/device_proof_fetch_h200.sh): where the install transaction's time goes on that machine's
# disk (its tmpfs beside it), and what the journal's fsyncs cost there (--no-fsync: an experiment).
set -u
R=$PWD; cd .devrun/tree || exit 1
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $R/.whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
df -T /tmp /dev/shm; grep -E " / | /tmp " /proc/mounts
for work in /tmp/p1 /dev/shm/p1; do echo "== parts $work"; timeout 90 python3 bench/install_journal_parts.py --runs 10 --work $work 2>&1 | tail -7; done
echo "== parts /tmp, no fsync"; timeout 90 python3 bench/install_journal_parts.py --runs 10 --work /tmp/p2 --no-fsync 2>&1 | tail -7
for i in 1 2; do echo "== cost /tmp run $i"; timeout 90 python3 bench/install_journal_cost.py --runs 9 --work /tmp/c$i 2>&1 | tail -4; done
echo "== cost /tmp, no fsync"; timeout 90 python3 bench/install_journal_cost.py --runs 9 --work /tmp/c3 --no-fsync 2>&1 | tail -4
