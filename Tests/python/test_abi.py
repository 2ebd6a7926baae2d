"""The built libmistral.so's ABI: exports vs the committed list (debian/libmistral0.symbols, rules in
Tests/abi/check_exports.py), SONAME, dependencies, run path, and portable (x86-64-v3, no AVX-512) machine code.

The library checked is $MISTRAL_LIBRARY when set, else .build/release/libmistral.so (built by Tests/build.sh)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "Tests", "abi"))
import check_exports  # noqa: E402

LIB = os.environ.get("MISTRAL_LIBRARY") or os.path.join(ROOT, ".build", "release", "libmistral.so")
# libc/libm/libstdc++/libgcc_s/ld-linux, plus the image decoders (libpng, libz through it, TurboJPEG)
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2",
                  "libpng16.so.16", "libturbojpeg.so.0", "libz.so.1"}


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def lib():
    assert os.path.exists(LIB), f"missing {LIB}: run `bash Tests/build.sh` first"
    return LIB


def test_exports_match_committed_list(lib):
    errors, notes = check_exports.check(lib)
    assert errors == [], "\n".join(errors)


def test_only_mistral_symbols_exported(lib):
    names = [line.split()[-1] for line in run("nm", "-D", "--defined-only", lib).splitlines() if line.strip()]
    assert names and all(n.startswith("mistral_") for n in names), [n for n in names if not n.startswith("mistral_")]


def test_soname_from_header_major(lib):
    (major, _, _), _ = check_exports.header_info()
    assert re.search(r"\(SONAME\).*\[libmistral\.so\.%d\]" % major, run("readelf", "-d", lib))


def test_needs_only_system_libraries_and_no_toolchain_runpath(lib):
    dyn = run("readelf", "-d", lib)
    needed = set(re.findall(r"\(NEEDED\).*\[(.*)\]", dyn))
    assert needed <= ALLOWED_NEEDED, needed - ALLOWED_NEEDED
    for path in re.findall(r"\((?:RPATH|RUNPATH)\).*\[(.*)\]", dyn):
        assert all(p in ("$ORIGIN", "") for p in path.split(":")), f"run path {path!r} (the toolchain?)"
    # ldd with the toolchain out of reach resolves everything to system libraries.
    out = subprocess.run(["ldd", lib], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert "not found" not in out and "swift" not in out, out
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    names = {os.path.basename(n) for n in names} - {"linux-vdso.so.1"}
    assert names <= ALLOWED_NEEDED, names - ALLOWED_NEEDED


_PREFIXES = {"66", "67", "f2", "f3", "f0", "2e", "3e", "26", "36", "64", "65"}
_EVEX_OPERANDS = re.compile(r"%zmm|%k[0-7]|\{1to|%[xy]mm(1[6-9]|2\d|3[01])\b")


def _evex_by_function(path):
    """{function symbol: EVEX-encoded (AVX-512) instruction count} from objdump -d."""
    out = subprocess.run(["objdump", "-d", "-w", "--no-addresses", path], check=True, capture_output=True,
                         text=True).stdout
    counts, func = {}, "?"
    for line in out.splitlines():
        m = re.match(r"^<(.+)>:$", line.strip())
        if m:
            func = m.group(1)
            continue
        f = line.split("\t")
        if len(f) < 3:
            continue
        code = [b for b in f[1].split() if b not in _PREFIXES]
        if (code and code[0] == "62") or _EVEX_OPERANDS.search(f[2]):
            counts[func] = counts.get(func, 0) + 1
    return counts


def test_avx512_only_in_the_dispatched_kernel_target(lib):
    """Everything is built for x86-64-v3 except the MistralKernelsAVX512 target, whose code runs only after the
    CPUID dispatcher (KernelPath) found AVX-512: EVEX-encoded instructions anywhere else would crash an AVX2 CPU."""
    counts = _evex_by_function(lib)
    outside = {f: n for f, n in counts.items() if "MistralKernelsAVX512" not in f}
    inside = sum(n for f, n in counts.items() if "MistralKernelsAVX512" in f)
    assert not outside, f"AVX-512 outside MistralKernelsAVX512: {sorted(outside.items())[:8]}"
    assert inside > 0, "the AVX-512 kernels are missing from the library"


# ---- the list's rules, on scratch copies of the list and the header ----------------------------------------------
def _scratch(tmp_path, drop=(), minor=None, version_of=None):
    symbols = tmp_path / "libmistral0.symbols"
    lines = open(check_exports.SYMBOLS, encoding="utf-8").read().splitlines()
    lines = [l for l in lines if not (l.startswith(" ") and l.split()[0].split("@")[0] in drop)]
    if version_of:
        lines = [l.replace(l.split()[1], version_of[1]) if l.startswith(f" {version_of[0]}@") else l for l in lines]
    symbols.write_text("\n".join(lines) + "\n")
    header = tmp_path / "mistral.h"
    text = open(check_exports.HEADER, encoding="utf-8").read()
    if minor is not None:
        text = re.sub(r"(#define MISTRAL_VERSION_MINOR) \d+", rf"\1 {minor}", text)
    header.write_text(text)
    return str(symbols), str(header)


def _listed_version():
    _, listed = check_exports.read_symbols()
    return max(check_exports.vtuple(v) for v in listed.values())


def test_rule_removed_export_fails(lib, tmp_path):
    symbols, header = _scratch(tmp_path)
    with open(symbols, "a") as f:
        f.write(" mistral_gone@Base 0.0.1\n")
    errors, _ = check_exports.check(lib, symbols, header)
    assert any("removed" in e and "mistral_gone" in e for e in errors), errors


def test_rule_added_export_needs_minor_bump(lib, tmp_path):
    symbols, header = _scratch(tmp_path, drop=("mistral_version",))
    errors, _ = check_exports.check(lib, symbols, header)
    assert any("without a MINOR" in e and "mistral_version" in e for e in errors), errors


def test_rule_added_export_allowed_after_minor_bump(lib, tmp_path):
    version, _ = check_exports.header_info()
    if version[:2] > _listed_version()[:2]:
        pytest.skip("the header is already bumped past the list")
    symbols, header = _scratch(tmp_path, drop=("mistral_version",), minor=version[1] + 1)
    # The bumped scratch header is newer than the library's real one; only the list rule is of interest here.
    errors, notes = check_exports.check(lib, symbols, header)
    assert not [e for e in errors if "mistral_version" in e], errors
    assert any("mistral_version" in n for n in notes), notes


def test_rule_version_from_the_future_fails(lib, tmp_path):
    symbols, header = _scratch(tmp_path, version_of=("mistral_eval", "99.0.0"))
    errors, _ = check_exports.check(lib, symbols, header)
    assert any("newer than the header" in e for e in errors), errors
