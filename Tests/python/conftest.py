"""Shared fixtures: the repo layout, the real SmolLM2 model, and the Python bindings on sys.path."""
import json
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
BUILD = os.path.join(ROOT, ".build", "release")
MODEL_PATH = os.environ.get("MISTRAL_TEST_MODEL", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import mistral  # noqa: E402

CHAT_PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def fixture(rel):
    with open(os.path.join(FIXTURES, rel), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def model():
    assert os.path.exists(MODEL_PATH), f"missing {MODEL_PATH}: run `bash examples/download-model.sh` first"
    m = mistral.Model(MODEL_PATH)
    yield m
    m.close()


@pytest.fixture
def session(model):
    s = mistral.Session(model, n_ctx=512, threads=2)
    yield s
    s.close()
