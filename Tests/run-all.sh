#!/usr/bin/env bash
# Runs every test: builds in release, then the Swift tests, then pytest (Python bindings, C client, CLI).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash examples/setup.sh
bash examples/download-model.sh >/dev/null
bash examples/download-tekken.sh >/dev/null
python3 -c "import pytest, numpy, jsonschema, fastapi, uvicorn, openai, httpx" 2>/dev/null || \
    python3 -m pip install --quiet pytest numpy jsonschema fastapi uvicorn openai httpx
bash Tests/build.sh
swift test -c release --skip-build
python3 -m pytest -q Tests/python
