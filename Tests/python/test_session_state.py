"""Prompt cache, saved sessions and context shift through the Python binding (and the CLI chat): a restored
session continues with exactly the original's tokens, in a fresh process too (greedy and seeded, SmolLM2 and
tiny-s); refused files leave the session unchanged; a copied prefix continues like a fresh evaluation; after a
shift the next logits match a fresh evaluation of the kept tokens at their new positions (a one-layer model, whose
keys and values depend on their token and position only); a chat that overflows n_ctx keeps going and keeps its
system prompt."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import mistral
from conftest import BUILD, FIXTURES, MODEL_PATH, ROOT

TINY = os.path.join(FIXTURES, "tiny-s", "gguf", "tiny-s-Q8_0.gguf")
CLI = os.path.join(BUILD, "mistral-cli")
SYSTEM = "<|im_start|>system\nYou are a pirate who tells long stories.<|im_end|>\n"
USER = "<|im_start|>user\nTell me a story about a cat.<|im_end|>\n<|im_start|>assistant\n"

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import mistral
m = mistral.Model(sys.argv[2])
s = mistral.Session(m, n_ctx=256, threads=2, seed=12345)
s.load(sys.argv[3])
n = s.n_past
s.generate([], max_tokens=16, temperature=float(sys.argv[4]), ignore_eos=True)
print(json.dumps(s.tokens[n:]))
"""


@pytest.fixture(scope="module")
def tiny():
    m = mistral.Model(TINY)
    yield m
    m.close()


def prompt_ids(model):
    ids = model.tokenize("Once upon a time, in a quiet village by the sea,", add_bos=model.add_bos)
    return ids or [1, 2, 3]


@pytest.mark.parametrize("which", ["smollm2", "tiny-s"])
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_restore_in_a_fresh_process_continues_identically(which, temperature, model, tiny, tmp_path):
    m, path = (model, MODEL_PATH) if which == "smollm2" else (tiny, TINY)
    a = mistral.Session(m, n_ctx=256, threads=2)
    a.generate(prompt_ids(m), max_tokens=5, temperature=temperature, seed=42, ignore_eos=True)
    f = tmp_path / "state.bin"
    a.save(f)
    blob = a.save_bytes()
    assert f.read_bytes() == blob
    n = a.n_past
    a.generate([], max_tokens=16, temperature=temperature, ignore_eos=True)
    expected = a.tokens[n:]
    assert len(expected) == 16
    out = subprocess.run([sys.executable, "-c", CHILD, os.path.join(ROOT, "bindings", "python"), path, str(f),
                          str(temperature)], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, MISTRAL_LIBRARY=mistral.library_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == expected
    b = mistral.Session(m, n_ctx=256, threads=2)
    b.load_bytes(blob)
    b.generate([], max_tokens=16, temperature=temperature, ignore_eos=True)
    assert b.tokens[n:] == expected


def test_refused_loads_leave_the_session_unchanged(model, tiny, tmp_path):
    a = mistral.Session(model, n_ctx=256, threads=2)
    a.generate(prompt_ids(model), max_tokens=4, temperature=0.9, seed=5)
    good = a.save_bytes()
    t = mistral.Session(tiny, n_ctx=64, threads=2)
    t.eval([1, 2, 3])
    foreign = t.save_bytes()
    b = mistral.Session(model, n_ctx=256, threads=2)
    b.eval([1, 2, 3, 4])
    before, before_state = b.tokens, b.save_bytes()
    corrupt = bytearray(good)
    corrupt[len(good) // 2] ^= 1
    cases = [(good[:-1], mistral.ERR_FORMAT, "truncated"), (good[:100], mistral.ERR_FORMAT, "too few"),
             (bytes(corrupt), mistral.ERR_FORMAT, "checksum"), (b"x" * 200, mistral.ERR_FORMAT, "magic"),
             (foreign, mistral.ERR_INVALID_ARGUMENT, "different model")]
    for data, status, needle in cases:
        with pytest.raises(mistral.MistralError) as e:
            b.load_bytes(data)
        assert e.value.status == status and needle in str(e.value), str(e.value)
        p = tmp_path / "bad.bin"
        p.write_bytes(data)
        with pytest.raises(mistral.MistralError) as e:
            b.load(p)
        assert e.value.status == status, str(e.value)
        assert b.tokens == before and b.save_bytes() == before_state
    small = mistral.Session(model, n_ctx=4, threads=1)
    with pytest.raises(mistral.MistralError) as e:
        small.load_bytes(good)
    assert e.value.status == mistral.ERR_CONTEXT_FULL
    with pytest.raises(mistral.MistralError) as e:
        b.load(tmp_path / "missing.bin")
    assert e.value.status == mistral.ERR_IO
    b.load_bytes(good)
    assert b.tokens == a.tokens


def test_copied_prefix_continues_like_a_fresh_evaluation(model):
    ids = model.tokenize(SYSTEM + USER, special=True)
    cache = mistral.Session(model, n_ctx=256, threads=2)
    cache.eval(ids[:-4])  # e.g. the shared system prompt, evaluated once
    fresh = mistral.Session(model, n_ctx=256, threads=2)
    expected = fresh.generate(ids, max_tokens=12, temperature=0)
    s = mistral.Session(model, n_ctx=256, threads=2, kv_type="q8_0")
    s.copy_prefix_from(cache)
    assert s.n_past == len(ids) - 4 and s.common_prefix(ids) == len(ids) - 4
    assert s.tokens == ids[:-4]
    f16 = mistral.Session(model, n_ctx=256, threads=2)
    f16.copy_prefix_from(cache, len(ids) - 6)
    assert f16.generate(ids, max_tokens=12, temperature=0, reuse_prefix=True) == expected
    with pytest.raises(mistral.MistralError) as e:
        f16.copy_prefix_from(cache, len(ids))
    assert e.value.status == mistral.ERR_INVALID_ARGUMENT


def one_layer_model(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "Tests", "fuzz"))
    import minimodels
    p = tmp_path / "one-layer.gguf"
    p.write_bytes(minimodels.gguf(N_EMBD=64))
    return mistral.Model(str(p))


@pytest.mark.parametrize("kv,tolerance", [("f32", 1e-4), ("f16", 5e-3)])
def test_shift_then_next_logits_match_a_fresh_evaluation(tmp_path, kv, tolerance):
    """One decoder layer: every cached key and value depends on its token and position only, so after a shift the
    context equals a fresh evaluation of the kept tokens and so must the next token's logits (up to rounding: the
    re-rotation in f32, and for f16 one more rounding of the moved keys)."""
    m = one_layer_model(tmp_path)
    ids = [(i * 37 + 11) % m.n_vocab for i in range(48)]
    keep, discard, nxt = 6, 20, [17]
    a = mistral.Session(m, n_ctx=64, threads=1, kv_type=kv)
    a.eval(ids)
    a.shift(keep, discard)
    kept = ids[:keep] + ids[keep + discard:]
    assert a.tokens == kept
    got = a.eval(nxt, logits=True)[0]
    b = mistral.Session(m, n_ctx=64, threads=1, kv_type=kv)
    want = b.eval(kept + nxt, logits=True)[-1]
    unshifted = mistral.Session(m, n_ctx=64, threads=1, kv_type=kv)
    wrong = unshifted.eval(ids + nxt, logits=True)[-1]
    err = float(np.max(np.abs(got - want)))
    assert err <= tolerance * max(1.0, float(np.max(np.abs(want)))), err
    # the check can fail: without the shift the logits differ by far more than the tolerance
    assert float(np.max(np.abs(wrong - want))) > 10 * max(err, tolerance)
    with pytest.raises(mistral.MistralError):
        a.shift(10, 1000)


def test_generation_overflowing_n_ctx_keeps_the_system_prompt(model):
    """Must show 5 (library): a chat runs past n_ctx twice over — a long answer, then another turn appended — and
    the context still starts with the system prompt."""
    system = model.tokenize(SYSTEM, special=True)
    s = mistral.Session(model, n_ctx=96, threads=2)
    text = s.generate(SYSTEM + USER, max_tokens=160, temperature=0.7, seed=3, ignore_eos=True, context_shift=True,
                      n_keep=len(system))
    assert s.last_stop_reason == "max_tokens" and s.last_n_generated == 160 and len(text) > 0
    assert s.tokens[:len(system)] == system and s.n_past <= 96
    turn = "<|im_end|>\n<|im_start|>user\nAnd then what happened to the cat?<|im_end|>\n<|im_start|>assistant\n"
    s.generate(turn, max_tokens=80, temperature=0.7, ignore_eos=True, context_shift=True, n_keep=len(system))
    assert s.last_n_generated == 80 and s.tokens[:len(system)] == system
    # without the policy the same conversation stops at the full context
    t = mistral.Session(model, n_ctx=96, threads=2)
    with pytest.raises(mistral.MistralError) as e:
        t.generate(SYSTEM + USER, max_tokens=160, temperature=0.7, seed=3, ignore_eos=True)
    assert e.value.status == mistral.ERR_CONTEXT_FULL


def test_cli_chat_context_shift_keeps_the_system_prompt(model):
    """Must show 5 (CLI): with --context-shift a chat longer than n_ctx drops its oldest turns, keeps the system
    prompt (the kept positions cover it) and answers every turn; without it the CLI starts over."""
    system = "You are a helpful assistant. Always answer in one short sentence."
    turns = "".join(q + "\n" for q in ["Name a fruit.", "Why is the sky blue?", "Count to five.", "Describe a cat.",
                                        "Which planet is largest?", "Give me a color.", "Say hello in French.",
                                        "How many legs has a spider?"])
    args = [CLI, "chat", "-m", MODEL_PATH, "-c", "160", "-n", "40", "--temp", "0", "-t", "2", "--system", system, "-v"]
    r = subprocess.run(args + ["--context-shift"], input=turns, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "starting a new conversation" not in r.stderr
    shifts = re.findall(r"\[context shift: [^\]]*\]", r.stderr)
    assert shifts, r.stderr
    held = len(model.chat_tokenize([{"role": "system", "content": system}, {"role": "user", "content": "x"}]))
    system_turn = len(model.tokenize(f"<|im_start|>system\n{system}<|im_end|>\n", special=True))
    for line in shifts:
        kept = int(line.split("kept the first ")[1].split(" ")[0])
        assert system_turn <= kept < held, line  # the system turn (and the next turn's role tokens)
    assert r.stderr.count("[prompt ") == 8
    plain = subprocess.run(args, input=turns, capture_output=True, text=True, timeout=600)
    assert "starting a new conversation" in plain.stderr
