#!/usr/bin/env bash
# Builds everything in release: libmistral.so (+ its SONAME link), mistral-cli, the test bundle, and the C client.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
swift build -c release --build-tests
out=.build/release
ln -sf libmistral.so "$out/libmistral.so.0"
mkdir -p "$out/c"
cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -Iinclude bindings/c/mistral_client.c \
    -L"$out" -lmistral -Wl,-rpath,'$ORIGIN/..' -o "$out/c/mistral_client"
cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iinclude examples/stream.c \
    -L"$out" -lmistral -Wl,-rpath,'$ORIGIN/..' -o "$out/c/stream"
cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -Iinclude Tests/c/check_logits.c \
    -L"$out" -lmistral -lm -Wl,-rpath,'$ORIGIN/..' -o "$out/c/check_logits"
cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iinclude Tests/c/log_race.c \
    -L"$out" -lmistral -pthread -Wl,-rpath,'$ORIGIN/..' -o "$out/c/log_race"
cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -Iinclude Tests/c/check_sampling.c \
    -L"$out" -lmistral -lm -Wl,-rpath,'$ORIGIN/..' -o "$out/c/check_sampling"
cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -Iinclude Tests/c/check_tools.c \
    -L"$out" -lmistral -Wl,-rpath,'$ORIGIN/..' -o "$out/c/check_tools"
