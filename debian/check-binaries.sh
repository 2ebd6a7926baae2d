#!/bin/sh
# Checks the properties the packages promise, on a built or installed libmistral and (optionally) the CLI:
#   check-binaries.sh LIBMISTRAL_SO [MISTRAL_CLI]
# - SONAME libmistral.so.<MAJOR of include/mistral.h> (MAJOR read from $MISTRAL_HEADER, default include/mistral.h)
# - only mistral_* symbols in the dynamic symbol table (nm -D --defined-only)
# - no RPATH/RUNPATH; NEEDED only libc, libm, libstdc++, libgcc_s, ld-linux (Swift runtime linked statically)
#   and the image decoders libpng16 and libturbojpeg
# - AVX-512 (EVEX-encoded) instructions only in the MistralKernelsAVX512 functions, which run only after the CPUID
#   dispatcher found AVX-512: the rest must run on any x86-64-v3 (AVX2+FMA) CPU. Needs a symbol table: on a stripped
#   file this check is skipped (Tests/python/test_abi.py makes it on the unstripped build).
# Prints one line per failed check and exits 1 if any failed.
set -u
lib="$1"; cli="${2:-}"
header="${MISTRAL_HEADER:-include/mistral.h}"
fail=0
bad() { echo "check-binaries: FAIL: $*" >&2; fail=1; }

major="$(sed -n 's/^#define MISTRAL_VERSION_MAJOR \([0-9][0-9]*\).*/\1/p' "$header")"
soname="$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[ "$soname" = "libmistral.so.$major" ] || bad "$lib: SONAME '$soname', expected libmistral.so.$major"

others="$(nm -D --defined-only "$lib" | awk '$3 !~ /^mistral_/')"
[ -z "$others" ] || bad "$lib exports symbols outside mistral_*: $others"
[ -n "$(nm -D --defined-only "$lib" | awk '$3 ~ /^mistral_/')" ] || bad "$lib exports no mistral_* symbols"

for f in "$lib" $cli; do
    rp="$(readelf -d "$f" | grep -E '\((RPATH|RUNPATH)\)')"
    [ -z "$rp" ] || bad "$f has a run path: $rp"
    needed="$(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' \
        | grep -v -E '^(libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2|libpng16\.so\.16|libturbojpeg\.so\.0)$')"
    [ -z "$needed" ] || bad "$f needs libraries outside libc/libm/libstdc++/libgcc_s/ld-linux: $needed"
    # EVEX (AVX-512) instructions start with byte 0x62 after any legacy prefixes; also catch their registers.
    if nm "$f" 2>/dev/null | grep -q .; then
        evex="$(objdump -d -w --no-addresses "$f" 2>/dev/null | awk -F'\t' '
            /^<.*>:$/ { fn = $0; next }
            NF >= 3 { n = split($2, b, " "); i = 1
                      while (i <= n && b[i] ~ /^(66|67|f2|f3|f0|2e|3e|26|36|64|65)$/) i++
                      if ((b[i] == "62" || $3 ~ /%zmm|%k[0-7]|\{1to|%[xy]mm(1[6-9]|2[0-9]|3[01])([^0-9]|$)/) \
                          && fn !~ /MistralKernelsAVX512/) c++ }
            END { print c + 0 }')"
        [ "$evex" = 0 ] || bad "$f contains $evex AVX-512 (EVEX) instructions outside MistralKernelsAVX512"
    else
        echo "check-binaries: $f is stripped: AVX-512 placement checked on the build (Tests/python/test_abi.py)" >&2
    fi
done
exit $fail
