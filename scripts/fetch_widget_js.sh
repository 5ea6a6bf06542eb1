#!/usr/bin/env bash
# Fetch the two scripts that render ipywidgets in the static HTML (require.js and the
# @jupyter-widgets/html-manager embedder) from the npm registry into book/_static/widgets/,
# so the built site loads them locally instead of from a CDN. Not committed (see .gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=book/_static/widgets
# The embedder loads its icon fonts relative to the page (all pages live in book/), so they are
# served from book/@jupyter-widgets/html-manager/dist/ through Sphinx's html_extra_path.
fonts=book/_extra/book/@jupyter-widgets/html-manager/dist
[ -s "$dest/embed-amd.js" ] && [ -s "$dest/require.js" ] && [ -d "$fonts" ] && exit 0
command -v npm >/dev/null || { echo "fetch_widget_js: npm is needed (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8 >/dev/null)
mkdir -p "$dest"
tar -xzf "$tmp"/jupyter-widgets-html-manager-1.0.15.tgz -C "$tmp" package/dist/embed-amd.js
cp "$tmp"/package/dist/embed-amd.js "$dest/embed-amd.js"
tar -xzf "$tmp"/jupyter-widgets-html-manager-1.0.15.tgz -C "$tmp" --wildcards 'package/dist/*.woff*' 'package/dist/*.ttf' 'package/dist/*.eot' 'package/dist/*.svg'
mkdir -p "$fonts"
cp "$tmp"/package/dist/*.woff* "$tmp"/package/dist/*.ttf "$tmp"/package/dist/*.eot "$tmp"/package/dist/*.svg "$fonts"/
tar -xzf "$tmp"/requirejs-2.3.8.tgz -C "$tmp" package/require.js
cp "$tmp"/package/require.js "$dest/require.js"
echo "fetch_widget_js: $(du -sh "$dest" | cut -f1) in $dest, fonts in $fonts"
