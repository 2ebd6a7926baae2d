"""Continuous batching through the Python binding: sessions of one model generating from several threads at once get
the tokens they get alone (greedy and seeded), on SmolLM2 and tiny-s; batch_stats shows their steps were shared;
max_batch_sessions=1 turns batching off; the shared pool's size is the model's `threads`."""
import ctypes
import os
import threading

import pytest

import mistral
from conftest import CHAT_PROMPT, FIXTURES

TINY = os.path.join(FIXTURES, "tiny-s", "gguf", "tiny-s-Q8_0.gguf")
PROMPTS = [CHAT_PROMPT, "The three primary colors are", "def fibonacci(n):", "Once upon a time"]


def run_all(model, prompts, seeded, concurrent):
    sessions = [mistral.Session(model, n_ctx=512) for _ in prompts]
    out = [None] * len(prompts)

    def one(i):
        kw = {"temperature": 0.9, "seed": 100 + i} if seeded else {"temperature": 0}
        ids = []
        sessions[i].generate(prompts[i], max_tokens=24, ignore_eos=True, on_token=lambda p, t: ids.append(t), **kw)
        out[i] = ids

    if concurrent:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for i in range(len(prompts)):
            one(i)
    for s in sessions:
        s.close()
    return out


@pytest.mark.parametrize("seeded", [False, True])
def test_concurrent_sessions_get_their_solo_tokens_on_smollm2(model, seeded):
    alone = run_all(model, PROMPTS, seeded, concurrent=False)
    model.batch_stats(reset=True)
    together = run_all(model, PROMPTS, seeded, concurrent=True)
    stats = model.batch_stats()
    assert together == alone
    assert all(len(ids) == 24 for ids in together)
    assert stats.batched_steps > 0 and stats.max_sessions > 1, stats


@pytest.mark.parametrize("seeded", [False, True])
def test_concurrent_sessions_get_their_solo_tokens_on_tiny_s(seeded):
    m = mistral.Model(TINY)
    vocab = m.n_vocab
    prompts = [[(j * 7919 + i * 104729 + 11) % (vocab - 1) + 1 for j in range(5 + 40 * i)] for i in range(4)]
    alone = run_all(m, prompts, seeded, concurrent=False)
    m.batch_stats(reset=True)
    together = run_all(m, prompts, seeded, concurrent=True)
    stats = m.batch_stats()
    assert together == alone
    assert stats.batched_steps > 0, stats
    assert stats.rows >= sum(len(p) for p in prompts) and stats.busy_ns > 0
    m.close()


def test_max_batch_sessions_one_never_batches():
    m = mistral.Model(TINY, max_batch_sessions=1)
    run_all(m, [[1, 2, 3], [4, 5, 6], [7, 8, 9]], False, concurrent=True)
    stats = m.batch_stats()
    assert stats.steps > 0 and stats.batched_steps == 0 and stats.max_sessions == 1
    m.close()


def test_shared_pool_size_and_bad_values():
    m = mistral.Model(TINY, threads=2)
    assert m.n_threads == 2
    m.close()
    assert mistral.Model(TINY).n_threads >= 1
    for kw in ({"threads": -1}, {"threads": 513}, {"max_batch_sessions": 0}, {"max_batch_sessions": 257}):
        with pytest.raises(ValueError):
            mistral.Model(TINY, **kw)
    # the C layer refuses them too
    lib = mistral._lib
    for field, value in (("n_threads", -1), ("n_threads", 513), ("max_batch_sessions", 0), ("max_batch_sessions", 300)):
        params = mistral._ModelParams()
        lib.mistral_model_params_init(ctypes.byref(params))
        setattr(params, field, value)
        handle = ctypes.c_void_p()
        assert lib.mistral_model_load(TINY.encode(), ctypes.byref(params), ctypes.byref(handle)) == mistral.ERR_INVALID_ARGUMENT
        assert not handle.value
    tok = mistral.Model(os.path.join(FIXTURES, "tiny-s", "tokenizer", "tekken.json"))
    assert tok.n_threads == 0
    with pytest.raises(mistral.MistralError):
        tok.batch_stats()
    tok.close()
    assert lib.mistral_model_batch_stats(None, None, 0) == mistral.ERR_INVALID_ARGUMENT
    assert lib.mistral_model_n_threads(None) == 0
