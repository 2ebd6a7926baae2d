"""The load progress callback (mistral_model_params.progress_callback, Model(progress=...)): fractions from 0 to 1,
increasing, for re-quantizing loads (HF and native folders to Q8_0 / Q4_0) and for reading a GGUF file; returning
nonzero cancels the load with MISTRAL_ERR_CANCELLED, frees what it allocated, and the next load works."""
import ctypes
import os

import pytest

import mistral
from conftest import FIXTURES, MODEL_PATH

TINY = os.path.join(FIXTURES, "tiny-s")
TEKKEN = os.path.join(TINY, "tokenizer", "tekken.json")


def load(rel, **kw):
    return mistral.Model(os.path.join(TINY, rel), tokenizer_path=TEKKEN, **kw)


def assert_progress(fractions):
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b > a for a, b in zip(fractions, fractions[1:])), fractions
    assert all(0.0 <= f <= 1.0 for f in fractions)


@pytest.mark.parametrize("rel,weight_type", [("hf", "q8_0"), ("hf", "q4_0"), ("native", "q8_0")])
def test_requantizing_load_reports_increasing_fractions(rel, weight_type):
    seen = []
    with load(rel, weight_type=weight_type, progress=seen.append) as m:
        assert_progress(seen)
        assert len(seen) > 50  # every 0.5 % of the converted bytes, not just 0 and 1
        with mistral.Session(m, n_ctx=64, threads=1) as s:
            assert len(s.generate("Hello", max_tokens=4, temperature=0, ignore_eos=True)) > 0


def test_gguf_load_reports_reading_the_file():
    seen = []
    mistral.Model(MODEL_PATH, progress=seen.append).close()
    assert_progress(seen)
    assert len(seen) >= 4  # the ~94 MB file is read in 16 MB steps


def test_load_without_slow_work_reports_0_and_1():
    seen = []
    load("hf", progress=seen.append).close()  # bf16 used in place: nothing converted, nothing read ahead
    assert seen == [0.0, 1.0]


@pytest.mark.parametrize("stop_at", [0.0, 0.3, 0.99])
def test_returning_true_cancels(stop_at):
    seen = []

    def progress(f):
        seen.append(f)
        return f >= stop_at

    with pytest.raises(mistral.MistralError) as e:
        load("hf", weight_type="q8_0", progress=progress)
    assert e.value.status == mistral.ERR_CANCELLED and "cancelled" in e.value.message
    assert seen[-1] >= stop_at and seen[-1] < 1.0
    assert all(f < stop_at for f in seen[:-1])  # never called again after it asked to stop
    load("hf", weight_type="q8_0").close()  # the library is fine afterwards


def test_exception_in_callback_cancels_and_is_reraised():
    def progress(f):
        if f > 0.5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load("hf", weight_type="q4_0", progress=progress)
    with pytest.raises(TypeError):
        load("hf", progress=42)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_cancelled_loads_leak_nothing():
    def cycle():
        with pytest.raises(mistral.MistralError):
            load("hf", weight_type="q8_0", progress=lambda f: f > 0.9)

    for _ in range(20):
        cycle()
    before = rss_bytes()
    for _ in range(200):
        cycle()
    # a leaked converted copy (~0.4 MB of Q8_0 matrices) per cycle would add ~80 MB
    assert rss_bytes() - before < 6 << 20


def test_c_api_cancel_sets_out_model_null():
    lib = mistral._lib
    params = mistral._ModelParams()
    lib.mistral_model_params_init(ctypes.byref(params))
    assert params.struct_size == ctypes.sizeof(mistral._ModelParams)
    assert not params.progress_callback and params.progress_user_data is None
    calls = []

    @mistral._PROGRESS_CALLBACK
    def stop_now(fraction, user_data):
        calls.append((fraction, user_data))
        return 7  # any nonzero value cancels

    params.progress_callback = stop_now
    params.progress_user_data = 1234
    params.weight_type = mistral.WEIGHT_TYPES["q8_0"]
    params.tokenizer_path = TEKKEN.encode()
    out = ctypes.c_void_p(1)
    status = lib.mistral_model_load(os.path.join(TINY, "hf").encode(), ctypes.byref(params), ctypes.byref(out))
    assert status == mistral.ERR_CANCELLED and out.value is None
    assert calls == [(0.0, 1234)]
    assert b"cancelled" in lib.mistral_last_error()

    # a caller built against the 0.2 header (no progress fields) still loads: the fields default to none
    params.struct_size = mistral._ModelParams.progress_callback.offset
    status = lib.mistral_model_load(os.path.join(TINY, "hf").encode(), ctypes.byref(params), ctypes.byref(out))
    assert status == mistral.OK and out.value
    lib.mistral_model_free(out)
    assert len(calls) == 1
