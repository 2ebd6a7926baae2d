"""mistral_model_estimate (mistral.estimate): the memory a model and a session will need, computed before loading,
is within 10 % of the peak resident memory measured when a process loads the model and fills the context — for
SmolLM2 (Q4_1 GGUF) and tiny-s (f32 GGUF) at two context sizes each — and its parts follow the architecture.
(tiny-s is 2.6 MB: its contexts are long enough for the model and its context, not malloc's reuse of a few hundred
KB freed earlier in the process, to be what is measured.)"""
import ctypes
import json
import os
import subprocess
import sys

import pytest

import mistral
from conftest import FIXTURES, MODEL_PATH, ROOT

TINY = os.path.join(FIXTURES, "tiny-s")
TINY_GGUF = os.path.join(TINY, "gguf", "tiny-s-f32.gguf")
TEKKEN = os.path.join(TINY, "tokenizer", "tekken.json")

# Run in a fresh process: RSS once the library is loaded and has run (the estimate call a user makes first: the
# library's own code and runtime, a few MB once per process, are not the model's), then peak RSS (VmHWM) once the
# model is loaded and the context is full (the KV cache is touched only as positions are written).
MEASURE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import mistral

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

path, n_ctx, kv = sys.argv[2], int(sys.argv[3]), sys.argv[4]
mistral.estimate(path, n_ctx=n_ctx, kv_type=kv, threads=2)
base = status("VmRSS")
m = mistral.Model(path)
s = mistral.Session(m, n_ctx=n_ctx, threads=2, kv_type=kv)
s.eval([(i * 7919 + 13) % m.n_vocab for i in range(n_ctx - 1)])
print(json.dumps({"peak": status("VmHWM") - base, "n_ctx": s.n_ctx}))
"""


@pytest.mark.parametrize("path,n_ctx,kv", [(MODEL_PATH, 512, "f16"), (MODEL_PATH, 2048, "f16"),
                                           (TINY_GGUF, 4096, "f32"), (TINY_GGUF, 8192, "f32")],
                         ids=["smollm2-512", "smollm2-2048", "tiny-s-4096", "tiny-s-8192"])
def test_estimate_within_10_percent_of_peak_rss(path, n_ctx, kv):
    e = mistral.estimate(path, n_ctx=n_ctx, kv_type=kv, threads=2)
    r = subprocess.run([sys.executable, "-c", MEASURE, os.path.join(ROOT, "bindings", "python"), path, str(n_ctx), kv],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    measured = json.loads(r.stdout)
    assert measured["n_ctx"] == e.n_ctx == n_ctx
    assert e.total_bytes == e.weights_bytes + e.kv_bytes + e.scratch_bytes + e.other_bytes
    ratio = e.total_bytes / measured["peak"]
    assert 0.9 <= ratio <= 1.1, f"estimate {e.total_bytes} vs peak RSS {measured['peak']} (x{ratio:.3f}): {e}"


def test_parts_follow_the_architecture():
    m = mistral.Model(MODEL_PATH, vocab_only=True)
    e16 = mistral.estimate(MODEL_PATH, n_ctx=1000)
    e32 = mistral.estimate(MODEL_PATH, n_ctx=3000, kv_type="f32")
    # SmolLM2-135M: 30 layers, 3 KV heads of 64
    assert e16.kv_bytes_per_position == 2 * 30 * 3 * 64 * 2
    assert e32.kv_bytes_per_position == 2 * e16.kv_bytes_per_position
    assert mistral.estimate(MODEL_PATH, n_ctx=1000, kv_type="q8_0").kv_bytes_per_position == 2 * 30 * (192 // 32 * 34)
    assert e16.kv_bytes == 1000 * e16.kv_bytes_per_position and e32.kv_bytes == 3000 * e32.kv_bytes_per_position
    assert e16.weights_bytes >= os.path.getsize(MODEL_PATH)  # a GGUF is read whole
    assert e16.weights_bytes == e32.weights_bytes and e16.other_bytes == e32.other_bytes
    # n_ctx 0 resolves as a session does
    e0 = mistral.estimate(MODEL_PATH)
    with mistral.Model(MODEL_PATH) as full, mistral.Session(full, threads=1) as s:
        assert e0.n_ctx == s.n_ctx == min(full.n_ctx_train, 4096)
    # more threads: more attention scratch, nothing else
    e1, e8 = mistral.estimate(MODEL_PATH, threads=1), mistral.estimate(MODEL_PATH, threads=8)
    assert e8.scratch_bytes > e1.scratch_bytes and e8.weights_bytes == e1.weights_bytes
    assert m.n_vocab == 49152


def test_requantized_and_vocab_only_estimates():
    hf = os.path.join(TINY, "hf")
    stored = mistral.estimate(hf, tokenizer_path=TEKKEN)
    q8 = mistral.estimate(hf, tokenizer_path=TEKKEN, weight_type="q8_0")
    q4 = mistral.estimate(hf, tokenizer_path=TEKKEN, weight_type="q4_0")
    assert stored.weights_bytes > q8.weights_bytes > q4.weights_bytes > 0  # bf16 > Q8_0 (8.5 bits) > Q4_0 (4.5)
    assert 0.45 < q8.weights_bytes / stored.weights_bytes < 0.6
    voc = mistral.estimate(hf, tokenizer_path=TEKKEN, vocab_only=True)
    assert voc.weights_bytes == voc.kv_bytes == voc.scratch_bytes == 0 and voc.other_bytes > 0
    tok = mistral.estimate(TEKKEN)
    assert tok.total_bytes == tok.other_bytes > 0 and tok.n_ctx == 0
    # the vision encoder counts in other_bytes when the checkpoint has one
    assert stored.other_bytes > voc.other_bytes


def test_errors():
    with pytest.raises(mistral.MistralError) as e:
        mistral.estimate(os.path.join(ROOT, "no-such-model.gguf"))
    assert e.value.status == mistral.ERR_IO
    with pytest.raises(mistral.MistralError) as e:
        mistral.estimate(os.path.join(ROOT, "Package.swift"))
    assert e.value.status == mistral.ERR_FORMAT
    with pytest.raises(ValueError):
        mistral.estimate(MODEL_PATH, kv_type="f8")
    lib = mistral._lib
    out = mistral._MemoryEstimate()
    assert lib.mistral_model_estimate(MODEL_PATH.encode(), None, None, ctypes.byref(out)) == mistral.ERR_INVALID_ARGUMENT
    assert b"struct_size" in lib.mistral_last_error()
    assert lib.mistral_model_estimate(None, None, None, ctypes.byref(out)) == mistral.ERR_INVALID_ARGUMENT
    assert lib.mistral_model_estimate(MODEL_PATH.encode(), None, None, None) == mistral.ERR_INVALID_ARGUMENT
    sp = mistral._SessionParams()
    lib.mistral_session_params_init(ctypes.byref(sp))
    sp.kv_type = 9
    out.struct_size = ctypes.sizeof(out)
    assert lib.mistral_model_estimate(MODEL_PATH.encode(), None, ctypes.byref(sp), ctypes.byref(out)) == \
        mistral.ERR_INVALID_ARGUMENT
    # an older, shorter struct: only the fields it has are written
    out = mistral._MemoryEstimate()
    out.struct_size = mistral._MemoryEstimate.kv_bytes.offset
    out.kv_bytes = 77
    assert lib.mistral_model_estimate(MODEL_PATH.encode(), None, None, ctypes.byref(out)) == mistral.OK
    assert out.n_ctx == 4096 and out.weights_bytes > 0 and out.kv_bytes == 77


def mapped_rss(path):
    """Resident bytes of this process's mappings of `path` (/proc/self/smaps)."""
    total, current = 0, None
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and "-" in parts[0] and len(parts[0]) > 8 and ":" in parts[3]:
                current = parts[5] if len(parts) > 5 else None
            elif parts and parts[0] == "Rss:" and current == path:
                total += int(parts[1]) * 1024
    return total


def test_converted_sources_are_released():
    """What the estimate counts for --weights q8_0 (the converted copy only) holds: each float matrix's mapped
    pages are dropped once converted, so the bf16 file does not stay resident next to its Q8_0 copy."""
    st = os.path.realpath(os.path.join(TINY, "hf", "model.safetensors"))
    with mistral.Model(os.path.join(TINY, "hf"), tokenizer_path=TEKKEN, weight_type="q8_0"):
        converted = mapped_rss(st)
    with mistral.Model(os.path.join(TINY, "hf"), tokenizer_path=TEKKEN) as m, \
            mistral.Session(m, n_ctx=64, threads=1) as s:
        s.eval(list(range(1, 40)))  # used in place: the forward pass reads (and keeps) the bf16 pages
        in_place = mapped_rss(st)
    assert in_place > 0.5 * os.path.getsize(st)
    assert converted < 0.35 * in_place, (converted, in_place)
