"""The C client (bindings/c) and the mistral-cli tool, run as separate processes on the real model."""
import os
import subprocess

from conftest import BUILD, CHAT_PROMPT, MODEL_PATH, ROOT

C_CLIENT = os.environ.get("MISTRAL_C_CLIENT", os.path.join(BUILD, "c", "mistral_client"))
CLI = os.path.join(BUILD, "mistral-cli")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def test_c_client_generates():
    assert os.path.exists(C_CLIENT), "build bindings/c first (Tests/run-all.sh does)"
    r = run([C_CLIENT, MODEL_PATH, CHAT_PROMPT, "-t", "2"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "The capital of France is Paris."
    assert "stop reason 1" in r.stderr


def test_c_client_callback_stop():
    r = run([C_CLIENT, MODEL_PATH, CHAT_PROMPT, "--stop-after", "3"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "The capital of"
    assert "stopped by callback after 3 pieces" in r.stderr


def test_c_client_reports_errors():
    r = run([C_CLIENT, "/nonexistent.gguf", "hi"])
    assert r.returncode == 1
    assert "MISTRAL_ERR_IO" in r.stderr


def test_cli_generate_chat_prompt():
    r = run([CLI, "generate", "-m", MODEL_PATH, "-p", CHAT_PROMPT, "--temp", "0", "-t", "2"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "The capital of France is Paris."


def test_cli_tokenize():
    r = run([CLI, "tokenize", "-m", MODEL_PATH, "Hello, world!"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[19556, 28, 905, 17]"


def test_cli_bad_model():
    r = run([CLI, "generate", "-m", os.path.join(ROOT, "Package.swift"), "-p", "hi"])
    assert r.returncode == 1 and "MISTRAL_ERR_FORMAT" in r.stderr
