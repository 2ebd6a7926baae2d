#!/usr/bin/env bash
# Builds what README command 1 and the C and Python snippets need, in release: the library
# (.build/release/libmistral.so, plus the libmistral.so.0 link its SONAME asks the loader for) and the CLI
# (.build/release/mistral-cli). Tests/build.sh builds everything (tests and C programs too).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
swift build -c release --product mistral
swift build -c release --product mistral-cli
ln -sf libmistral.so .build/release/libmistral.so.0
