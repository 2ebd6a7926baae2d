#!/usr/bin/env bash
# Fetches Mistral's Tekken vocabulary (tekken_240911.json, 131k tokens, ~19 MB; the tokenizer of Mistral NeMo and
# Mistral Small 3.1) into models/. It ships inside the PyPI package `mistral-common`; the Tekken tests read it
# from there (or from $MISTRAL_TEKKEN_240911).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$root/models/tekken_240911.json"
if [ -s "$target" ]; then
    echo "$target"
    exit 0
fi
mkdir -p "$root/models"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" mistral-common >&2
wheel="$(ls "$tmp"/mistral_common-*.whl | head -n 1)"
python3 - "$wheel" "$tmp/tekken_240911.json" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("mistral_common/data/tekken_240911.json") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
mv "$tmp/tekken_240911.json" "$target"
echo "$target"
