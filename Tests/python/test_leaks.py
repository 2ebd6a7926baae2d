"""Resident memory stays flat over many load / generate / free cycles of tiny-s (text and image chat): nothing
the library allocates per model, session, image or call outlives its handle."""
import os

import pytest

import mistral
from conftest import FIXTURES

TINY = os.path.join(FIXTURES, "tiny-s")
IMG = os.path.join(TINY, "reference", "img1_84x56.png")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def text_cycle():
    with mistral.Model(os.path.join(TINY, "gguf", "tiny-s-Q8_0.gguf")) as m:
        with mistral.Session(m, n_ctx=64, threads=1) as s:
            s.generate(m.tokenize("Hello"), max_tokens=4, temperature=0.7, seed=3, ignore_eos=True)
            with pytest.raises(mistral.MistralError):
                s.generate([m.n_vocab + 5])  # a failing call (sets the thread's error message)


def image_cycle():
    with mistral.Model(os.path.join(TINY, "hf"), tokenizer_path=os.path.join(TINY, "tokenizer", "tekken.json")) as m:
        with mistral.Session(m, n_ctx=256, threads=1) as s, mistral.Image.open(IMG) as img:
            s.chat([{"role": "user", "content": "Describe.", "images": [img]}], max_tokens=2, temperature=0)


def growth(cycle, warmup=20, n=250):
    for _ in range(warmup):
        cycle()
    before = rss_bytes()
    for _ in range(n):
        cycle()
    return rss_bytes() - before


def test_rss_flat_over_text_cycles():
    # one leaked KV cache (64 KiB) or model handle per cycle would add > 15 MB
    assert growth(text_cycle) < 6 << 20


def test_rss_flat_over_image_chat_cycles():
    assert growth(image_cycle, n=150) < 6 << 20
