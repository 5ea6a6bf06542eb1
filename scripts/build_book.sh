#!/usr/bin/env bash
# Build the HTML book, executing every chapter, warning-free (-W). Output: _build/html/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_widget_js.sh
export MPLBACKEND=Agg PYTHONWARNINGS="ignore::DeprecationWarning"
jupyter-book build --all -W --keep-going .
