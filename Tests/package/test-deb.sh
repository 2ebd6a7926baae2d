#!/usr/bin/env bash
# Builds the Debian packages (one release build), installs them on this machine with dpkg -i, and checks them
# from outside the source tree with the Swift toolchain out of reach. Run as root (CI) on Debian with the Swift
# toolchain (in /opt/swift/usr/bin or on PATH); missing build tools (debhelper, dh-python, pkgconf, binutils) are
# installed with apt-get. Ends with "deb: N passed, M failed"; exits 1 if any check failed.
#
#   bash Tests/package/test-deb.sh
#
# Environment:
#   MISTRAL_DEB_WORKDIR=DIR   build in DIR (kept, and its SwiftPM build reused by the next run) instead of a temp dir
#   MISTRAL_DEB_KEEP_INSTALLED=1   leave the packages installed (default: they are purged at the end, unless this
#                                  run found them already installed)
#   MISTRAL_TEST_MODEL=PATH   the SmolLM2-135M-Instruct Q4_1 model (default models/, downloaded when missing)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

passed=0
failed=0
log="$(mktemp)"
ok() { passed=$((passed + 1)); echo "ok   $1"; }
ko() { failed=$((failed + 1)); echo "FAIL $1"; [ -s "$log" ] && sed 's/^/     | /' "$log" | tail -n 40; }
# check NAME CMD...: runs CMD with its output in $log; passes when it exits 0.
check() { local name="$1"; shift; if "$@" >"$log" 2>&1; then ok "$name"; else ko "$name"; fi; }
finish() {
    echo "deb: $passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit $?
}

if [ "$(id -u)" -ne 0 ]; then
    echo "test-deb.sh installs packages with dpkg -i: run it as root" >&2
    ko "running as root"; finish
fi

# ---- prerequisites ---------------------------------------------------------------------------------------------
need=()
for pair in dh:debhelper dh_python3:dh-python pkg-config:pkgconf objdump:binutils cc:gcc c++:g++ \
            dpkg-buildpackage:dpkg-dev; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        >/dev/null || { ko "apt-get install ${need[*]}"; finish; }
fi
if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then export PATH="$PATH:/opt/swift/usr/bin"; fi
model="${MISTRAL_TEST_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
[ -s "$model" ] || model="$(bash examples/download-model.sh)" || { ko "download the test model"; finish; }
model="$(cd "$(dirname "$model")" && pwd)/$(basename "$model")"

# ---- build -------------------------------------------------------------------------------------------------------
if [ -n "${MISTRAL_DEB_WORKDIR:-}" ]; then
    work="$MISTRAL_DEB_WORKDIR"; export MISTRAL_DEB_KEEP_BUILD=1
    mkdir -p "$work"; rm -f "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo
else
    work="$(mktemp -d)"
fi
scratch="$(mktemp -d)"  # where the installed files are used from: outside the source tree
cleanup() {
    rm -rf "$scratch" "$log"
    [ -n "${MISTRAL_DEB_WORKDIR:-}" ] || rm -rf "$work"
    if [ -n "${installed_here:-}" ] && [ -z "${MISTRAL_DEB_KEEP_INSTALLED:-}" ]; then
        dpkg --purge mistral-tools python3-mistral libmistral-dev libmistral0 >/dev/null 2>&1
    fi
}
trap cleanup EXIT

# dpkg-buildpackage writes the packages next to the source directory, so build a copy of this working tree
# (tracked and untracked files, not ignored ones) in $work/src.
mkdir -p "$work/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | tar -cf - --null -T - | tar -xf - -C "$work/src"
else
    tar -cf - --exclude='./.build*' --exclude=./models --exclude=./.git . | tar -xf - -C "$work/src"
fi
echo "building the packages in $work (log: $work/build.log)"
if (cd "$work/src" && dpkg-buildpackage -b -us -uc -d) >"$work/build.log" 2>&1; then
    ok "dpkg-buildpackage -b -us -uc -d"
else
    cp "$work/build.log" "$log"; ko "dpkg-buildpackage -b -us -uc -d"; finish
fi
version="$(cd "$work/src" && dpkg-parsechangelog -S Version)"
debs=()
for p in libmistral0 libmistral-dev mistral-tools; do debs+=("$work/${p}_${version}_amd64.deb"); done
debs+=("$work/python3-mistral_${version}_all.deb")
check "four binary packages built" ls "${debs[@]}"
hdr_version="$(sed -n 's/^#define MISTRAL_VERSION_STRING "\(.*\)"/\1/p' include/mistral.h)"
check "debian/changelog version ($version) matches mistral.h ($hdr_version)" test "${version%-*}" = "$hdr_version"
if command -v lintian >/dev/null; then
    check "lintian: no errors" bash -c "lintian '$work'/*.changes | tee /dev/stderr | { ! grep -q '^E:'; }"
fi

# ---- install -------------------------------------------------------------------------------------------------------
dpkg-query -W -f='${Status}\n' libmistral0 2>/dev/null | grep -q '^install ok installed' || installed_here=1
check "dpkg -i the four packages" dpkg -i "${debs[@]}"

multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH)"
lib="/usr/lib/$multiarch/libmistral.so.0"
E=(env -i PATH=/usr/bin:/bin HOME="$scratch")   # no Swift toolchain, no LD_LIBRARY_PATH, Debian's python3
check "installed files in place" ls "$lib" "/usr/lib/$multiarch/libmistral.so" /usr/include/mistral.h \
    "/usr/lib/$multiarch/pkgconfig/mistral.pc" /usr/bin/mistral /usr/lib/python3/dist-packages/mistral/__init__.py \
    /usr/lib/python3/dist-packages/mistral/session.py /usr/lib/python3/dist-packages/mistral/server/app.py \
    /usr/bin/mistral-server
check "installed mistral.h is the source header" cmp /usr/include/mistral.h include/mistral.h
check "pkg-config --modversion mistral = $hdr_version" \
    bash -c "test \"\$(${E[*]} pkg-config --modversion mistral)\" = '$hdr_version'"
check "SONAME, exports, NEEDED, no run path, no AVX-512 (libmistral.so.0, /usr/bin/mistral)" \
    env MISTRAL_HEADER=/usr/include/mistral.h sh debian/check-binaries.sh "$lib" /usr/bin/mistral
check "nm -D --defined-only lists only mistral_*" bash -c \
    "nm -D --defined-only '$lib' | tee /dev/stderr | awk '\$3 !~ /^mistral_/ { bad = 1 } END { exit bad || NR == 0 }'"
check "ldd libmistral.so.0: only libc/libm/libstdc++/libgcc_s/ld-linux + libpng/libz/libturbojpeg" bash -c \
    "${E[*]} ldd '$lib' | tee /dev/stderr | awk '{ print \$1 }' | sed 's,.*/,,' \
     | grep -v -E '^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2|libpng16\.so\.16|libz\.so\.1|libturbojpeg\.so\.0)$' \
     | { ! grep .; }"
check "ldd /usr/bin/mistral: no Swift libraries, nothing missing" bash -c \
    "${E[*]} ldd /usr/bin/mistral | tee /dev/stderr | { ! grep -E 'swift|not found'; }"
check "exports match debian/libmistral0.symbols (Tests/abi/check_exports.py)" \
    python3 Tests/abi/check_exports.py "$lib"

# ---- use the installed files from outside the source tree ----------------------------------------------------------
cp bindings/c/mistral_client.c "$scratch/"
cd "$scratch"
check "cc mistral_client.c \$(pkg-config --cflags --libs mistral)" bash -c \
    "${E[*]} sh -c 'cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic mistral_client.c \$(pkg-config --cflags --libs mistral) -o mistral_client'"
check "mistral_client needs libmistral.so.0, has no run path" bash -c \
    "readelf -d mistral_client | tee /dev/stderr | grep -q 'NEEDED.*\[libmistral.so.0\]' && ! readelf -d mistral_client | grep -q -E 'RPATH|RUNPATH'"
prompt=$'<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n'
check "mistral_client answers 'The capital of France is Paris.'" bash -c \
    "${E[*]} ./mistral_client '$model' \"\$1\" -n 32 -t 2 | tee /dev/stderr | grep -qF 'The capital of France is Paris.'" \
    _ "$prompt"
py='import mistral, sys
assert mistral.__file__.startswith("/usr/lib/python3/dist-packages/"), mistral.__file__
m = mistral.Model(sys.argv[1])
ids = m.tokenize("Hello, world!")
print(mistral.library_path, ids)
assert ids == [19556, 28, 905, 17], ids'
check "python3-mistral (loader path): tokenize 'Hello, world!' = [19556, 28, 905, 17]" bash -c \
    "${E[*]} python3 -c '$py' '$model' && ${E[*]} python3 -c 'import mistral; assert mistral.library_path == \"libmistral.so.0\", mistral.library_path'"
check "python3-mistral honours MISTRAL_LIBRARY" bash -c \
    "${E[*]} MISTRAL_LIBRARY='$lib' python3 -c 'import mistral; assert mistral.library_path == \"$lib\", mistral.library_path; print(mistral.version())'"
check "/usr/bin/mistral tokenize" bash -c \
    "${E[*]} /usr/bin/mistral tokenize -m '$model' 'Hello, world!' | tee /dev/stderr | grep -qF '[19556, 28, 905, 17]'"
check "/usr/bin/mistral-server --help" bash -c \
    "${E[*]} /usr/bin/mistral-server --help | tee /dev/stderr | grep -qF -- '--api-key'"
cd "$root"
finish
