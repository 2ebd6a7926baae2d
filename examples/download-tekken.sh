#!/usr/bin/env bash
# Fetches Mistral's Tekken vocabularies (131k tokens, ~19 MB each) into models/: tekken_240911.json (Mistral NeMo
# Instruct 2407 / Pixtral 12B, the vocabulary of Mistral Small 3.1) and tekken_240718.json (Mistral NeMo), both
# config.version "v3". They ship inside the PyPI package `mistral-common`; the Tekken tests read them from there
# (or from $MISTRAL_TEKKEN_240911 / $MISTRAL_TEKKEN_240718). Prints the path of tekken_240911.json.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
names=(tekken_240911.json tekken_240718.json)
missing=0
for n in "${names[@]}"; do [ -s "$root/models/$n" ] || missing=1; done
if [ "$missing" = 0 ]; then
    echo "$root/models/tekken_240911.json"
    exit 0
fi
mkdir -p "$root/models"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" mistral-common==1.13.1 >&2
wheel="$(ls "$tmp"/mistral_common-*.whl | head -n 1)"
python3 - "$wheel" "$tmp" "${names[@]}" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in sys.argv[3:]:
        with z.open("mistral_common/data/" + name) as src, open(sys.argv[2] + "/" + name, "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
for n in "${names[@]}"; do [ -s "$root/models/$n" ] || mv "$tmp/$n" "$root/models/$n"; done
echo "$root/models/tekken_240911.json"
