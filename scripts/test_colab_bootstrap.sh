#!/usr/bin/env bash
# The Colab check: run every book/*.ipynb top to bottom the way a Colab student does.
#
# 1. a NEW virtual environment (temp dir) with only what Colab preinstalls: torch, numpy, scipy,
#    matplotlib, seaborn, pandas, scikit-learn, tqdm, ipywidgets, ipykernel, nbclient, nbformat
#    (pinned as in requirements.txt where it pins them) -- NOT flowbook;
# 2. a wheel of flowbook built from a copy of this repository;
# 3. each notebook copied to a temp dir OUTSIDE the repository and executed with nbclient, with
#    FLOWBOOK_BOOTSTRAP=1 and FLOWBOOK_PIP_SOURCE=<the wheel>, so the notebook's own first cell
#    (the Colab bootstrap) installs flowbook. flowbook is uninstalled before every notebook, and
#    a cell injected before the bootstrap asserts it is not importable and that the kernel runs in
#    the new environment; a cell injected after it asserts flowbook came from site-packages.
#
# Usage: bash scripts/test_colab_bootstrap.sh [notebook ...]   (default: every book/*.ipynb)
# Env:   COLAB_CELL_TIMEOUT (s per cell, default 600), COLAB_JOBS (notebooks at a time, default 2),
#        KEEP_COLAB_TMP=1 keeps the temp dir.
# Exit status 0 only if every notebook ran; the failing notebooks are listed at the end.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
CELL_TIMEOUT="${COLAB_CELL_TIMEOUT:-600}"
TMP="$(mktemp -d -t flowbook-colab-XXXXXX)"
cleanup() { [ "${KEEP_COLAB_TMP:-0}" = 1 ] && echo "kept $TMP" || rm -rf "$TMP"; }
trap cleanup EXIT
start=$(date +%s)
say() { echo "[colab-check $(( $(date +%s) - start ))s] $*"; }

if [ "$#" -gt 0 ]; then NOTEBOOKS=("$@"); else NOTEBOOKS=("$REPO"/book/*.ipynb); fi
[ "${#NOTEBOOKS[@]}" -gt 0 ] && [ -f "${NOTEBOOKS[0]}" ] || { echo "no notebooks found" >&2; exit 2; }

# --- 0. cheap check first: every notebook starts with the Colab bootstrap cell of CONTRIBUTING.md ---
"$PY" - "${NOTEBOOKS[@]}" <<'CHECK' || exit 1
import json, sys
bad = []
for path in sys.argv[1:]:
    cells = json.load(open(path)).get("cells", [])
    src = "".join(cells[0]["source"]) if cells else ""
    if not cells or cells[0]["cell_type"] != "code" or "Colab bootstrap" not in src or "FLOWBOOK_PIP_SOURCE" not in src:
        bad.append(path)
    elif "remove-cell" not in cells[0].get("metadata", {}).get("tags", []):
        bad.append(path + " (bootstrap cell not tagged remove-cell)")
for b in bad:
    print(f"FAIL {b}: the first cell is not the Colab bootstrap cell of CONTRIBUTING.md", file=sys.stderr)
sys.exit(1 if bad else 0)
CHECK

# --- 1. fresh environment with Colab's preinstalled packages only --------------------------------
say "creating a fresh virtual environment in $TMP/venv"
"$PY" -m venv "$TMP/venv"
VPY="$TMP/venv/bin/python"
pin() {  # the requirements.txt pin of a package, or the bare name when it is not pinned there
  local line; line=$(grep -iE "^$1==" "$REPO/requirements.txt" || true)
  echo "${line:-$1}"
}
PKGS=()
for p in torch numpy scipy matplotlib seaborn pandas scikit-learn tqdm ipywidgets ipykernel nbclient nbformat; do
  PKGS+=("$(pin "$p")")
done
say "installing ${PKGS[*]}"
# (pip's "Location ... is ignored" warnings about the local index layout are filtered out)
if ! "$VPY" -m pip install -q --disable-pip-version-check "${PKGS[@]}" > "$TMP/pip.log" 2>&1; then
  grep -v "is ignored" "$TMP/pip.log" >&2 || true
  echo "FAIL: could not install the Colab-like environment" >&2; exit 2
fi

if (cd "$TMP" && env -u PYTHONPATH "$VPY" -c "import flowbook" 2>/dev/null); then
  echo "FAIL: flowbook is importable in the fresh environment before any bootstrap cell ran" >&2; exit 1
fi

# --- 2. a wheel built from a copy of the repository (keeps build/ out of the checkout) ----------
mkdir -p "$TMP/src" "$TMP/wheel"
cp -r "$REPO/flowbook" "$REPO/pyproject.toml" "$REPO/README.md" "$TMP/src/"
find "$TMP/src" -name __pycache__ -prune -exec rm -rf {} +
say "building the flowbook wheel"
"$VPY" -m pip wheel -q --no-deps --disable-pip-version-check -w "$TMP/wheel" "$TMP/src" \
  || { echo "FAIL: could not build the flowbook wheel" >&2; exit 2; }
WHEEL="$(ls "$TMP"/wheel/flowbook_course-*.whl)"
say "wheel: $(basename "$WHEEL")"

# --- 3. execute each notebook outside the repository --------------------------------------------
mkdir -p "$TMP/run"
cat > "$TMP/run_one.py" <<'EOF'
"""Execute one notebook (already copied out of the repo) with nbclient; exit 1 on any failure."""
import sys, time
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

path, venv, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
nb = nbformat.read(path, as_version=4)
first = nb.cells[0] if nb.cells else None
if (first is None or first.cell_type != "code" or "Colab bootstrap" not in first.source
        or "FLOWBOOK_PIP_SOURCE" not in first.source):
    sys.exit(f"FAIL {path}: the first cell is not the Colab bootstrap cell of CONTRIBUTING.md")
before = nbformat.v4.new_code_cell(
    "import importlib.util, sys, os\n"
    f"assert sys.prefix == {venv!r}, f'kernel runs in {{sys.prefix}}, not the fresh environment'\n"
    "assert importlib.util.find_spec('flowbook') is None, "
    "'flowbook was importable BEFORE the bootstrap cell ran: ' + str(importlib.util.find_spec('flowbook').origin)")
after = nbformat.v4.new_code_cell(
    "import flowbook\n"
    "assert 'site-packages' in flowbook.__file__, f'flowbook imported from {flowbook.__file__}, not the installed wheel'")
nb.cells = [before, first, after] + nb.cells[1:]
client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                        resources={"metadata": {"path": sys.argv[4]}})
t0 = time.perf_counter()
try:
    client.execute()
except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
    msg = str(e)
    sys.exit(f"FAIL {path} after {time.perf_counter() - t0:.0f} s:\n{msg[-3000:]}")
shown = [f"cell {i}: {o.ename}: {o.evalue[:300]}" for i, c in enumerate(nb.cells) if c.cell_type == "code"
         for o in c.outputs if o.output_type == "error"]  # e.g. a figure refused by flowbook.layout
if shown:
    sys.exit(f"FAIL {path}: error outputs (the cells ran, but a reader sees an error):\n" + "\n".join(shown))
print(f"ok {time.perf_counter() - t0:.1f} s")
EOF

# Two notebooks at a time by default (COLAB_JOBS): each job has its own copy of the environment,
# so one job's uninstall of flowbook never races another's install. The chapters train on one
# thread, so two jobs use a 2-core machine's two cores.
JOBS="${COLAB_JOBS:-2}"
for j in $(seq 2 "$JOBS"); do cp -a "$TMP/venv" "$TMP/venv$j"; done
run_job() {  # run_job J NOTEBOOK...: the notebooks of job J in its own environment; results in $TMP/job$J.*
  local j="$1"; shift
  local venv="$TMP/venv"; [ "$j" -gt 1 ] && venv="$TMP/venv$j"
  for nb in "$@"; do
    local name work t0
    name="$(basename "$nb")"
    work="$TMP/run/${name%.ipynb}"
    mkdir -p "$work" && cp "$nb" "$work/$name"
    "$venv/bin/python" -m pip uninstall -q -y flowbook-course >/dev/null 2>&1 || true
    say "running $name (job $j)"
    t0=$(date +%s)
    # PYTHONPATH unset and cwd outside the repo: only the wheel installed by the bootstrap can supply flowbook.
    if (cd "$work" && env -u PYTHONPATH PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" \
          JUPYTER_PATH="$venv/share/jupyter" JUPYTER_DATA_DIR="$TMP/jupyter-data$j" \
          FLOWBOOK_BOOTSTRAP=1 FLOWBOOK_PIP_SOURCE="$WHEEL" PYTHONWARNINGS=ignore::DeprecationWarning \
          "$venv/bin/python" "$TMP/run_one.py" "$work/$name" "$venv" "$CELL_TIMEOUT" "$work"); then
      echo "$name $(( $(date +%s) - t0 )) s" >> "$TMP/job$j.times"
    else
      echo "$name" >> "$TMP/job$j.failed"
      echo "$name FAILED after $(( $(date +%s) - t0 )) s" >> "$TMP/job$j.times"
    fi
  done
}
pids=()
for j in $(seq 1 "$JOBS"); do
  mine=()
  for k in "${!NOTEBOOKS[@]}"; do [ $(( k % JOBS + 1 )) -eq "$j" ] && mine+=("${NOTEBOOKS[$k]}"); done
  [ "${#mine[@]}" -gt 0 ] && { run_job "$j" "${mine[@]}" & pids+=($!); }
done
for pid in "${pids[@]}"; do wait "$pid" || true; done
mapfile -t TIMES < <(cat "$TMP"/job*.times 2>/dev/null)
mapfile -t FAILED < <(cat "$TMP"/job*.failed 2>/dev/null)

echo "---- Colab bootstrap check: per-notebook wall time (includes the bootstrap's pip install) ----"
printf '  %s\n' "${TIMES[@]}"
say "total"
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "FAIL: ${#FAILED[@]} notebook(s) failed in the fresh environment: ${FAILED[*]}" >&2
  exit 1
fi
echo "PASS: all ${#NOTEBOOKS[@]} notebooks ran top to bottom, flowbook installed by their own bootstrap cell"
