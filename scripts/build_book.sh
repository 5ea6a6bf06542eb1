#!/usr/bin/env bash
# Build the HTML book, executing every chapter, warning-free (-W). Output: _build/html/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_widget_js.sh
export PYTHONWARNINGS="ignore::DeprecationWarning"  # no MPLBACKEND: notebooks need the inline backend
export TQDM_DISABLE=1  # progress bars are for people running a notebook; in static HTML they are empty widget boxes
jupyter-book build --all -W --keep-going .
