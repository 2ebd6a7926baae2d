"""Sessions refuse a second caller while busy; one model serves 8 threads with results equal to single-threaded
runs; mistral_log_set never lets an old callback run after it returns."""
import ctypes
import os
import threading

import pytest

import mistral
from conftest import CHAT_PROMPT, FIXTURES

TEKKEN = os.path.join(FIXTURES, "tiny-s", "tokenizer", "tekken.json")


def busy(e):
    return e.status == mistral.ERR_INVALID_ARGUMENT and "session is busy" in e.message


@pytest.mark.parametrize("call", ["generate", "reset", "truncate", "eval", "chat", "close"])
def test_reentrant_call_from_on_token_is_refused(model, call):
    s = mistral.Session(model, n_ctx=256, threads=1)
    errors = []

    def on_token(piece, token):
        try:
            {"generate": lambda: s.generate("x", max_tokens=1), "reset": s.reset, "truncate": lambda: s.truncate(0),
             "eval": lambda: s.eval([1]), "chat": lambda: s.chat([{"role": "user", "content": "x"}], template="chatml"),
             "close": s.close}[call]()
        except mistral.MistralError as e:
            errors.append(e)
        return True
    s.generate(CHAT_PROMPT, temperature=0, on_token=on_token)
    assert len(errors) == 1 and busy(errors[0]), errors
    # the session is intact: the answer continues from where the callback stopped it
    n = s.n_past
    assert n == 17 and s.last_stop_reason == "callback"
    s.reset()
    assert s.generate(CHAT_PROMPT, temperature=0) == "The capital of France is Paris."
    s.close()


def test_one_session_from_two_threads(model):
    s = mistral.Session(model, n_ctx=512, threads=1)
    inside, release = threading.Event(), threading.Event()

    def on_token(piece, token):
        inside.set()
        release.wait(30)  # hold the session (the GIL is released while waiting)
        return True
    worker = threading.Thread(target=lambda: s.generate(CHAT_PROMPT, temperature=0, on_token=on_token))
    worker.start()
    assert inside.wait(30)
    for call in (lambda: s.generate(CHAT_PROMPT), s.reset, lambda: s.eval([1, 2])):
        with pytest.raises(mistral.MistralError) as e:
            call()
        assert busy(e.value)
    lib = mistral._lib
    assert lib.mistral_session_reset(s.handle) == mistral.ERR_INVALID_ARGUMENT
    assert b"session is busy" in lib.mistral_last_error()
    release.set()
    worker.join()
    assert s.last_stop_reason == "callback"
    s.reset()  # free again
    s.close()


def _run(model, seed, threads=1):
    with mistral.Session(model, n_ctx=128, threads=threads) as s:
        greedy = s.generate(CHAT_PROMPT, temperature=0, max_tokens=12, ignore_eos=True)
        s.reset()
        sampled = s.generate("Once upon a time", temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=seed,
                             max_tokens=12, ignore_eos=True)
        return greedy, sampled


def test_eight_threads_share_one_model(model):
    """8 threads, each with its own session on one model (ctypes releases the GIL), give exactly what one thread
    gives: greedy and seeded sampling."""
    expected = {seed: _run(model, seed) for seed in range(4)}
    results, errors = {}, []

    def work(i):
        try:
            for rep in range(2):
                results[(i, rep)] = _run(model, i % 4)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 16
    for (i, _), got in results.items():
        assert got == expected[i % 4], i


def test_log_callback_never_called_after_replacement():
    """Threads keep logging (each tekken load logs at INFO) while the main thread swaps callbacks; a callback runs
    only while installed or while mistral_log_set is waiting for it, never after set_log_callback returned."""
    retired = set()
    late = []
    calls = [0]
    stop = threading.Event()

    def make(k):
        def cb(level, message):
            calls[0] += 1
            if k in retired:
                late.append(k)
        return cb

    def loader():
        while not stop.is_set():
            mistral.Model(TEKKEN).close()
    workers = [threading.Thread(target=loader) for _ in range(2)]
    try:
        mistral.set_log_callback(make(0), mistral.LOG_INFO)
        for t in workers:
            t.start()
        for k in range(1, 200):
            mistral.set_log_callback(make(k), mistral.LOG_INFO)
            retired.add(k - 1)
    finally:
        stop.set()
        for t in workers:
            t.join()
        mistral.set_log_callback(None)
    assert calls[0] > 0 and not late
    assert len(mistral._log_keepalive) == 1  # only the installed (null) wrapper is kept


def test_log_callback_race_in_c(tmp_path):
    """The same from C, with the old callback's user_data freed right after mistral_log_set returns (the issue's
    heap-use-after-free): the program checks every call's user_data is still live."""
    import subprocess
    from conftest import BUILD, ROOT
    exe = os.path.join(BUILD, "c", "log_race")
    assert os.path.exists(exe), "built by Tests/build.sh"
    out = subprocess.run([exe, TEKKEN], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "late calls: 0" in out.stdout
