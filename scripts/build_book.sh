#!/usr/bin/env bash
# Build the HTML book, executing every chapter, warning-free (-W). Output: _build/html/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_widget_js.sh
export PYTHONWARNINGS="ignore::DeprecationWarning"  # no MPLBACKEND: notebooks need the inline backend
jupyter-book build --all -W --keep-going .
