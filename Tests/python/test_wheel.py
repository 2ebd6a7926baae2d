"""The pip-installable package (bindings/python/pyproject.toml): the wheel is built (its backend runs
`swift build -c release --product mistral`, a no-op after Tests/build.sh), installed into a fresh venv, and used under
`env -i` with no Swift toolchain on PATH, from outside the checkout: it loads the libmistral.so it carries, tokenizes
and generates on the real model exactly as the checkout does; $MISTRAL_LIBRARY still picks another library."""
import json
import os
import subprocess
import sys
import zipfile

import pytest

import mistral
from conftest import BUILD, CHAT_PROMPT, MODEL_PATH, ROOT, fixture

SCRIPT = r"""
import json, os, shutil, sys
import mistral
model = mistral.Model(sys.argv[1])
session = mistral.Session(model, n_ctx=512, threads=2)
text = session.generate(sys.argv[2], temperature=0, max_tokens=32)
here = os.path.dirname(mistral.__file__)
print(json.dumps({"library": mistral.library_path, "module": here, "version": mistral.version(),
                  "ids": model.tokenize("Hello, world!"), "text": text, "swift": shutil.which("swift"),
                  "typed": os.path.exists(os.path.join(here, "py.typed"))}))
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    env = dict(os.environ)
    env.pop("MISTRAL_PREBUILT_LIBRARY", None)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w",
                        str(dist), os.path.join(ROOT, "bindings", "python")],
                       capture_output=True, text=True, timeout=1200, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = list(dist.glob("libmistral-*.whl"))
    assert len(wheels) == 1
    venv = tmp / "venv"
    py = str(venv / "bin" / "python")
    install = ["install", "--no-index", "--no-deps", "--disable-pip-version-check", str(wheels[0])]
    if subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, timeout=300).returncode == 0:
        r = subprocess.run([py, "-m", "pip", *install], capture_output=True, text=True, timeout=300)
    else:  # a Python without ensurepip (Debian's without python3-venv): this pip installs into the venv
        subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)], check=True, timeout=300)
        r = subprocess.run([sys.executable, "-m", "pip", "--python", py, *install], capture_output=True, text=True,
                           timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return {"wheel": wheels[0], "python": py, "cwd": tmp}


def run_clean(venv, extra_env=()):
    """The venv's python under env -i: PATH without the toolchain, no LD_LIBRARY_PATH, outside the checkout."""
    cmd = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={venv['cwd']}", *extra_env, venv["python"], "-c", SCRIPT,
           MODEL_PATH, CHAT_PROMPT]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=venv["cwd"])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_wheel_contents(venv):
    with zipfile.ZipFile(venv["wheel"]) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith("dist-info/METADATA"))).decode()
        lib = z.read("mistral/libmistral.so")
    assert {"mistral/__init__.py", "mistral/py.typed", "mistral/libmistral.so"} <= names
    package = os.path.join(ROOT, "bindings", "python")
    modules = {os.path.relpath(os.path.join(d, n), package) for d, _, files in os.walk(os.path.join(package, "mistral"))
               for n in files if n.endswith(".py")}
    assert {"mistral/_capi.py", "mistral/session.py", "mistral/server/app.py"} <= modules
    assert modules <= names  # every module of the split package, the server included
    with zipfile.ZipFile(venv["wheel"]) as z:
        entry = z.read(next(n for n in names if n.endswith("dist-info/entry_points.txt"))).decode()
    assert "mistral-server = mistral.server.__main__:main" in entry
    assert 'Requires-Dist: fastapi; extra == "server"' in meta
    assert any(n.endswith("dist-info/LICENSE") for n in names)
    assert "License: Apache-2.0" in meta and f"Version: {mistral.version()}" in meta
    assert venv["wheel"].name.endswith("-py3-none-linux_x86_64.whl")
    assert lib.startswith(b"\x7fELF")


def test_installed_wheel_works_without_swift(venv):
    out = run_clean(venv)
    site = os.path.realpath(out["module"])
    assert site.startswith(os.path.realpath(str(venv["cwd"] / "venv")))
    assert out["library"] == os.path.join(out["module"], "libmistral.so")  # the bundled one, not the checkout's
    assert out["swift"] is None
    assert out["typed"]
    assert out["version"] == mistral.version()
    case = fixture("smollm2-llamacpp/tokenize_Q4_1.json")["cases"][0]  # llama.cpp's ids for "Hello, world!"
    assert case["text"] == "Hello, world!" and out["ids"] == case["ids"]
    with mistral.Model(MODEL_PATH) as m, mistral.Session(m, n_ctx=512, threads=2) as s:
        assert out["text"] == s.generate(CHAT_PROMPT, temperature=0, max_tokens=32)
    assert out["text"].startswith("The capital of France is Paris")
    # the bundled library needs no Swift runtime: ldd finds every dependency with the plain loader path
    ldd = subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", "ldd", out["library"]], capture_output=True, text=True)
    assert "not found" not in ldd.stdout and "swift" not in ldd.stdout.lower()


def test_installed_wheel_has_the_server_command(venv):
    script = os.path.join(os.path.dirname(venv["python"]), "mistral-server")
    r = subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", script, "--help"], capture_output=True, text=True,
                       timeout=120, cwd=venv["cwd"])
    assert r.returncode == 0 and "--api-key" in r.stdout, r.stderr


def test_mistral_library_overrides_the_bundled_one(venv):
    other = os.path.join(BUILD, "libmistral.so")
    out = run_clean(venv, [f"MISTRAL_LIBRARY={other}"])
    assert out["library"] == other
