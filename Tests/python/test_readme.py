"""The README as a new user follows it: command 1 (it builds libmistral.so and mistral-cli), then the C program and
the Python snippet exactly as written, the stream.c build line (its rpath works from any directory), the 24B tables
equal to what bench/mistral_small_24b.py computes, and every example linked."""
import os
import re
import subprocess
import sys

import pytest

from conftest import MODEL_PATH, ROOT

README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
ANSWER = "The capital of France is Paris."


def section(title):
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else len(README)]


def blocks(text, lang):
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def bash(command, cwd=ROOT, timeout=600):
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def needs_model():
    assert os.path.exists(MODEL_PATH), "run `bash examples/download-model.sh` first"


def test_command_1_builds_library_and_cli_then_generates():
    lines = blocks(README[: README.index("\n## ")], "sh")[0].splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("# 1."))
    command = next(line for line in lines[i:] if not line.startswith("#"))
    assert "bash examples/build.sh" in command
    with open(os.path.join(ROOT, "examples", "build.sh")) as f:
        script = f.read()
    assert "--product mistral\n" in script and "--product mistral-cli\n" in script
    r = bash(command, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith(ANSWER)
    for name in ("libmistral.so", "libmistral.so.0", "mistral-cli"):
        assert os.path.exists(os.path.join(ROOT, ".build", "release", name))


def test_c_program_as_written(tmp_path):
    source = blocks(section("C"), "c")[0]
    command = re.match(r"/\* hello\.c: (.*?) \*/", source).group(1)
    (tmp_path / "hello.c").write_text(source)
    command = command.replace("hello.c", str(tmp_path / "hello.c")).replace("-o hello", f"-o {tmp_path}/hello") \
        .replace("./hello", f"{tmp_path}/hello")
    r = bash(command)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ANSWER
    assert "loading 100%" in r.stderr and re.search(r"needs \d+ MiB", r.stderr)


def test_python_snippet_as_written():
    code = blocks(section("Python"), "python")[0]
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "MemoryEstimate(weights_bytes=" in r.stdout
    assert "[19556, 28, 905, 17]" in r.stdout
    assert "Paris" in r.stdout


def test_stream_example_build_line_works_from_any_directory(tmp_path):
    build = next(line for line in blocks(section("C"), "sh")[0].splitlines() if line.startswith("cc "))
    assert '-Wl,-rpath,"$PWD/.build/release"' in build
    r = bash(build.replace("-o stream", f"-o {tmp_path}/stream"))
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(tmp_path / "stream"), MODEL_PATH, "Once upon a time", "8"], cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("Once upon a time") and len(run.stdout) > len("Once upon a time\n")


def test_24b_tables_are_computed():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "mistral_small_24b.py")], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    begin, end = "<!-- bench/mistral_small_24b.py: begin -->\n", "\n<!-- bench/mistral_small_24b.py: end -->"
    embedded = README[README.index(begin) + len(begin): README.index(end)]
    assert embedded.strip() == r.stdout.strip()
    assert "160 KiB" in embedded  # 2 x 40 x 8 x 128 x 2 bytes per token


def test_every_example_is_linked():
    for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        assert f"(examples/{name})" in README, f"README does not link examples/{name}"
