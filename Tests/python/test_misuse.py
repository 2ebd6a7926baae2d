"""Misusing the Python binding raises TypeError/ValueError before anything reaches ctypes (which would wrap or
truncate silently), and callbacks that raise (KeyboardInterrupt included) stop generation and re-raise."""
import os
import signal
import threading
import time

import pytest

import mistral
from conftest import CHAT_PROMPT, MODEL_PATH


def test_max_tokens_that_would_wrap(session):
    with pytest.raises(ValueError, match="max_tokens"):
        session.generate(CHAT_PROMPT, max_tokens=2 ** 40)
    assert session.n_past == 0


@pytest.mark.parametrize("kwargs,error", [
    (dict(top_k=2 ** 33), ValueError), (dict(seed=-1), ValueError), (dict(seed=2 ** 64), ValueError),
    (dict(temperature="hot"), TypeError), (dict(temperature=float("nan")), ValueError),
    (dict(repeat_last_n=1.5), TypeError), (dict(stop=5), TypeError), (dict(stop=["a\0b"]), ValueError),
    (dict(stop=["x"] * 65), ValueError), (dict(on_token=3), TypeError),
])
def test_generate_argument_checks(session, kwargs, error):
    with pytest.raises(error):
        session.generate(CHAT_PROMPT, **kwargs)
    assert session.n_past == 0


def test_tokenize_refuses_non_text(model):
    with pytest.raises(TypeError):
        model.tokenize(5)  # bytes(5) would be five NUL bytes
    with pytest.raises(TypeError):
        model.tokenize(["a"])
    assert model.tokenize(bytearray(b"Hello")) == model.tokenize("Hello")


def test_token_ids_out_of_int32(model, session):
    with pytest.raises(ValueError):
        session.eval([2 ** 32 + 1])  # would wrap to token 1
    with pytest.raises(ValueError):
        model.detokenize([-(2 ** 40)])
    with pytest.raises(TypeError):
        session.eval("abc")
    with pytest.raises(ValueError):
        model.token_to_piece(2 ** 31)
    assert session.n_past == 0


def test_session_argument_checks(model):
    with pytest.raises(ValueError):
        mistral.Session(model, n_ctx=2 ** 32)  # would wrap to 0 (the default)
    with pytest.raises(ValueError):
        mistral.Session(model, n_ctx=-1)
    with pytest.raises(TypeError):
        mistral.Session(model, threads="2")
    with pytest.raises(TypeError):
        mistral.Session("not a model")


def test_truncate_argument_checks(session):
    session.eval([1, 2, 3])
    with pytest.raises(ValueError):
        session.truncate(2 ** 32 + 1)  # would wrap to 1
    with pytest.raises(ValueError):
        session.truncate(-1)
    assert session.n_past == 3


def test_stop_accepts_one_string(session):
    text = session.generate(CHAT_PROMPT, temperature=0, stop=" Paris")
    assert text == "The capital of France is" and session.last_stop_reason == "stop_string"
    session.reset()
    # a one-character list entry per character of "abc" would stop at the first "a"
    assert session.generate(CHAT_PROMPT, temperature=0, stop="abc") == "The capital of France is Paris."


def test_paths_with_nul(tmp_path):
    for call in (lambda: mistral.Model(MODEL_PATH + "\0.txt"),
                 lambda: mistral.Model(MODEL_PATH, tokenizer_path="a\0b"),
                 lambda: mistral.Model(MODEL_PATH, mmproj_path="a\0b"),
                 lambda: mistral.Image.open(str(tmp_path) + "/x\0.png")):
        with pytest.raises(ValueError, match="NUL"):
            call()
    with pytest.raises(TypeError):
        mistral.Model(42)


def test_chat_content_with_nul(model):
    with pytest.raises(ValueError, match="NUL"):
        model.chat_tokenize([{"role": "user", "content": "hi\0there"}], template="chatml")


def test_last_stop_reason_reset_on_every_call(session):
    session.generate(CHAT_PROMPT, temperature=0, max_tokens=2)
    assert session.last_stop_reason == "max_tokens"
    with pytest.raises(ValueError):
        session.generate("", max_tokens=2 ** 40)  # refused in Python
    assert session.last_stop_reason == "none" and session.last_n_generated == 0
    session.generate("", temperature=0, max_tokens=2)
    assert session.last_stop_reason == "max_tokens"
    with pytest.raises(mistral.MistralError):
        session.generate("", temperature=-1.0)  # refused by the library
    assert session.last_stop_reason == "none"


# ---- callbacks that raise --------------------------------------------------------------------------------------
def test_keyboard_interrupt_in_on_token_is_reraised(session):
    seen = []

    def on_token(piece, token):
        seen.append(piece)
        if len(seen) == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        session.generate(CHAT_PROMPT, temperature=0, ignore_eos=True, max_tokens=50, on_token=on_token)
    assert len(seen) == 2 and session.last_stop_reason == "callback"


def test_ctrl_c_during_generate_is_reraised(session):
    """SIGINT arriving while the library runs (delivered at a callback's entry) stops generation and is raised."""
    assert threading.current_thread() is threading.main_thread()
    started = threading.Event()

    def on_token(piece, token):
        started.set()

    def interrupt():
        started.wait(30)
        os.kill(os.getpid(), signal.SIGINT)
    t = threading.Thread(target=interrupt)
    t.start()
    with pytest.raises(KeyboardInterrupt):
        session.generate(CHAT_PROMPT, temperature=0, ignore_eos=True, max_tokens=400, on_token=on_token)
    t.join()
    assert session.last_stop_reason == "callback" and session.last_n_generated < 400
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    session.reset()
    assert session.generate(CHAT_PROMPT, temperature=0) == "The capital of France is Paris."


def test_ctrl_c_during_stream_is_reraised(session):
    it = session.stream(CHAT_PROMPT, temperature=0, ignore_eos=True, max_tokens=400)
    assert next(it)
    threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        for _ in it:
            time.sleep(0.01)
    assert session.n_past < 16 + 400  # generation stopped when the iterator was abandoned


def test_base_exception_in_chat_is_reraised(session):
    class Stop(BaseException):
        pass

    def on_token(piece, token):
        raise Stop
    with pytest.raises(Stop):
        session.chat([{"role": "user", "content": "Hi"}], template="chatml", on_token=on_token)
