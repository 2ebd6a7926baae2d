"""A PEP 517 build backend for the `mistral` module that needs nothing but the standard library.

build_wheel builds libmistral.so with the Swift toolchain (`swift build -c release --product mistral` in the
repository root; $SWIFT names the swift executable, else PATH, else /opt/swift/usr/bin/swift) — or takes the file
named by $MISTRAL_PREBUILT_LIBRARY — and writes a wheel holding the package's modules (mistral/*.py,
mistral/server/*.py), mistral/py.typed and mistral/libmistral.so, plus the `mistral-server` console script. The module loads the bundled library unless $MISTRAL_LIBRARY names another one.
"""
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)                       # bindings/python
ROOT = os.path.dirname(os.path.dirname(PROJECT))      # the repository
NAME = "libmistral"
SUMMARY = ("Python bindings (ctypes) for libmistral, an inference engine for Mistral Small 3.1, "
           "with the library bundled")


ENTRY_POINTS = "[console_scripts]\nmistral-server = mistral.server.__main__:main\n"


def _package_modules():
    """Every .py file of the package (sub-packages such as mistral/server included), as paths under PROJECT."""
    out = []
    for folder, dirs, names in os.walk(os.path.join(PROJECT, "mistral")):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(folder, PROJECT).replace(os.sep, "/")
        out += [f"{rel}/{n}" for n in sorted(names) if n.endswith(".py")]
    return out


def _version():
    with open(os.path.join(ROOT, "include", "mistral.h"), encoding="utf-8") as f:
        return re.search(r'#define MISTRAL_VERSION_STRING "([^"]+)"', f.read()).group(1)


def _swift():
    for candidate in (os.environ.get("SWIFT"), shutil.which("swift"), "/opt/swift/usr/bin/swift"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError("the Swift toolchain is needed to build libmistral.so: put swift on PATH, set SWIFT, "
                       "or set MISTRAL_PREBUILT_LIBRARY to a built libmistral.so")


def _library():
    prebuilt = os.environ.get("MISTRAL_PREBUILT_LIBRARY")
    if prebuilt:
        return prebuilt
    subprocess.run([_swift(), "build", "-c", "release", "--product", "mistral"], cwd=ROOT, check=True,
                   stdout=sys.stderr)
    return os.path.join(ROOT, ".build", "release", "libmistral.so")


def _tag():
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"py3-none-{platform}"


def _metadata(version):
    readme = ("Python bindings for libmistral: `import mistral`. The wheel bundles "
              "libmistral.so (x86-64-v3: AVX2, FMA, F16C); set MISTRAL_LIBRARY to use another build, e.g. the "
              "system's libmistral.so.0.\n")
    return "\n".join([
        "Metadata-Version: 2.1",
        f"Name: {NAME}",
        f"Version: {version}",
        f"Summary: {SUMMARY}",
        "License: Apache-2.0",
        "License-File: LICENSE",
        "Requires-Python: >=3.8",
        "Classifier: License :: OSI Approved :: Apache Software License",
        "Classifier: Operating System :: POSIX :: Linux",
        "Classifier: Programming Language :: Python :: 3",
        "Classifier: Typing :: Typed",
        "Provides-Extra: numpy",
        "Requires-Dist: numpy; extra == \"numpy\"",
        "Provides-Extra: server",
        "Requires-Dist: fastapi; extra == \"server\"",
        "Requires-Dist: uvicorn; extra == \"server\"",
        "Description-Content-Type: text/markdown",
        "",
        readme,
    ])


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    version = _version()
    library = _library()
    with open(library, "rb") as f:
        lib_bytes = f.read()
    if not lib_bytes.startswith(b"\x7fELF"):
        raise RuntimeError(f"{library} is not an ELF shared library")
    dist_info = f"{NAME}-{version}.dist-info"
    files = []
    for name in _package_modules():
        with open(os.path.join(PROJECT, name), "rb") as f:
            files.append((name, f.read(), 0o644))
    files.append(("mistral/py.typed", b"", 0o644))
    files.append(("mistral/libmistral.so", lib_bytes, 0o755))
    with open(os.path.join(ROOT, "LICENSE"), "rb") as f:
        files.append((f"{dist_info}/LICENSE", f.read(), 0o644))
    files.append((f"{dist_info}/METADATA", _metadata(version).encode(), 0o644))
    files.append((f"{dist_info}/entry_points.txt", ENTRY_POINTS.encode(), 0o644))
    wheel = f"Wheel-Version: 1.0\nGenerator: mistral_build\nRoot-Is-Purelib: false\nTag: {_tag()}\n"
    files.append((f"{dist_info}/WHEEL", wheel.encode(), 0o644))
    record = [_record_line(name, data) for name, data, _ in files] + [f"{dist_info}/RECORD,,"]
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode(), 0o644))
    filename = f"{NAME}-{version}-{_tag()}.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, mode in files:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return filename


def build_sdist(sdist_directory, config_settings=None):
    raise RuntimeError("libmistral has no Python-only sdist: the wheel needs libmistral.so, built from the whole "
                       "repository with the Swift toolchain (python3 -m pip wheel bindings/python)")
