#!/usr/bin/env python3
"""Checks libmistral's exported symbols against the committed list, debian/libmistral0.symbols.

    python3 Tests/abi/check_exports.py [LIBRARY]            # default: .build/release/libmistral.so
    python3 Tests/abi/check_exports.py --update [LIBRARY]   # record new exports (with the header's version)

The list is in dpkg-gensymbols format; the version after each symbol is the library version that introduced it,
and the newest of those versions is "the list's version" (the last release that added symbols). Rules:

- The SONAME is libmistral.so.<MISTRAL_VERSION_MAJOR> and matches the list's first line.
- Only mistral_* symbols are exported, and exactly the functions the header declares with MISTRAL_API.
- A listed symbol missing from the library always fails: removing or renaming an export breaks the ABI and needs
  a MAJOR bump (new SONAME, new package name, new list).
- An export not in the list fails unless include/mistral.h's MAJOR.MINOR is newer than the list's version, i.e.
  unless MISTRAL_VERSION_MINOR was bumped since the last recorded addition. Once the new symbols are recorded
  (--update writes them with the header's version), adding more needs another MINOR bump.
- No listed version may be newer than the header's version (the header's version never goes backwards).

Signature changes of an existing function are not visible in the dynamic symbol table; they are breaking changes
that reviewers of include/mistral.h must catch.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SYMBOLS = os.path.join(ROOT, "debian", "libmistral0.symbols")
HEADER = os.path.join(ROOT, "include", "mistral.h")
DEFAULT_LIBRARY = os.path.join(ROOT, ".build", "release", "libmistral.so")


def vtuple(text):
    return tuple(int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", text).groups())


def header_info(path=HEADER):
    text = open(path, encoding="utf-8").read()
    version = tuple(int(re.search(rf"#define MISTRAL_VERSION_{k}\s+(\d+)", text).group(1))
                    for k in ("MAJOR", "MINOR", "PATCH"))
    declared = set(re.findall(r"\bMISTRAL_API\b[^;]*?\b(mistral_\w+)\s*\(", text))
    return version, declared


def read_symbols(path=SYMBOLS):
    soname, entries = None, {}
    for line in open(path, encoding="utf-8"):
        if not line.strip() or line.startswith("#") or line.startswith("*") or line.startswith("|"):
            continue
        if not line.startswith(" "):
            soname = line.split()[0]
            continue
        name, version = line.split()[:2]
        entries[name.split("@")[0]] = version
    return soname, entries


def library_info(path):
    dyn = subprocess.run(["readelf", "-d", path], check=True, capture_output=True, text=True).stdout
    m = re.search(r"\(SONAME\).*\[(.*)\]", dyn)
    nm = subprocess.run(["nm", "-D", "--defined-only", path], check=True, capture_output=True, text=True).stdout
    exports = {line.split()[-1].split("@")[0] for line in nm.splitlines() if line.strip()}
    return (m.group(1) if m else None), exports


def check(library, symbols=SYMBOLS, header=HEADER):
    """Returns (errors, notes): lists of strings. No errors means the ABI is consistent."""
    errors, notes = [], []
    version, declared = header_info(header)
    vstr = "%d.%d.%d" % version
    soname, exports = library_info(library)
    list_soname, listed = read_symbols(symbols)
    listed_version = max((vtuple(v) for v in listed.values()), default=(0, 0, 0))

    if soname != f"libmistral.so.{version[0]}":
        errors.append(f"SONAME is {soname!r}, the header's MAJOR {version[0]} wants libmistral.so.{version[0]}")
    if list_soname != soname:
        errors.append(f"{symbols} describes {list_soname!r} but the library is {soname!r} "
                      "(a MAJOR bump needs a new package name and a fresh symbols list)")
    foreign = sorted(s for s in exports if not s.startswith("mistral_"))
    if foreign:
        errors.append("exports outside mistral_*: " + ", ".join(foreign))
    ours = {s for s in exports if s.startswith("mistral_")}
    if declared - ours:
        errors.append("declared in mistral.h (MISTRAL_API) but not exported: " + ", ".join(sorted(declared - ours)))
    if ours - declared:
        errors.append("exported but not declared in mistral.h: " + ", ".join(sorted(ours - declared)))
    removed = sorted(set(listed) - ours)
    if removed:
        errors.append("exports removed or renamed (an ABI break; needs a MAJOR bump): " + ", ".join(removed))
    future = sorted(s for s, v in listed.items() if vtuple(v) > version)
    if future:
        errors.append(f"listed with a version newer than the header's {vstr}: " + ", ".join(future))
    added = sorted(ours - set(listed))
    if added:
        if version[:2] > listed_version[:2]:
            notes.append(f"new exports for {vstr} (MINOR bumped from %d.%d), not yet recorded: " % listed_version[:2]
                         + ", ".join(added) + f"; record them with: python3 Tests/abi/check_exports.py --update")
        else:
            errors.append(f"new exports without a MINOR version bump (header {vstr}, symbols list already at "
                          "%d.%d.%d): " % listed_version + ", ".join(added)
                          + "; bump MISTRAL_VERSION_MINOR in include/mistral.h, then record them with "
                            "python3 Tests/abi/check_exports.py --update")
    return errors, notes


def update(library, symbols=SYMBOLS, header=HEADER):
    """Adds the library's unrecorded mistral_* exports to the symbols file with the header's version."""
    version, _ = header_info(header)
    _, exports = library_info(library)
    _, listed = read_symbols(symbols)
    added = sorted(s for s in exports if s.startswith("mistral_") and s not in listed)
    lines = open(symbols, encoding="utf-8").read().splitlines()
    head = [l for l in lines if not l.startswith(" ")]
    body = {l.split()[0].split("@")[0]: l for l in lines if l.startswith(" ")}
    for s in added:
        body[s] = f" {s}@Base %d.%d.%d" % version
    with open(symbols, "w", encoding="utf-8") as f:
        f.write("\n".join(head + [body[k] for k in sorted(body)]) + "\n")
    return added


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    library = args[0] if args else os.environ.get("MISTRAL_LIBRARY", DEFAULT_LIBRARY)
    if "--update" in argv:
        errors, _ = check(library)
        if errors:
            print("not updating:\n  " + "\n  ".join(errors), file=sys.stderr)
            return 1
        print("recorded: " + (", ".join(update(library)) or "nothing new"))
        return 0
    errors, notes = check(library)
    for n in notes:
        print("note: " + n)
    for e in errors:
        print("error: " + e, file=sys.stderr)
    print(f"abi: {library}: " + ("OK" if not errors else f"{len(errors)} problem(s)"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
