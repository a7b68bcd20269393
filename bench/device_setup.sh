# Sourced by the device proof scripts: the carried wheels (.whl) become importable, output is
# unbuffered, and print_stages summarises the run reports the GPU tests kept under $OUT.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site

print_stages() {
  python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
for name in ("gpu-auto-build.json", "gpu-auto-fetch.json"):
    path = Path(sys.argv[1], name)
    if path.is_file():
        r = json.loads(path.read_text())
        print(name, r["ok"], [(s["stage"], s["outcome"], s["seconds"], s["detail"][:90]) for s in r["stages"]])
PY
}
