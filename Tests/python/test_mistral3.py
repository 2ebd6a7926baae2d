"""Mistral Small 3.1 in miniature (tiny-s) through the Python bindings and the C API: every weight format against
the transformers reference, the Tekken tokenizer and the V7 chat format against mistral-common."""
import os
import subprocess

import numpy as np
import pytest

import mistral
from conftest import BUILD, FIXTURES, ROOT, fixture

TINY = os.path.join(FIXTURES, "tiny-s")
TEKKEN = os.path.join(TINY, "tokenizer", "tekken.json")
FORMATS = ["hf", "native", "gguf/tiny-s-f32.gguf", "gguf/tiny-s-bf16.gguf"]
REAL_TEKKEN = os.environ.get("MISTRAL_TEKKEN_240911", os.path.join(ROOT, "models", "tekken_240911.json"))


def load(rel, **kw):
    path = os.path.join(TINY, rel)
    if not rel.endswith(".gguf"):
        kw.setdefault("tokenizer_path", TEKKEN)
    return mistral.Model(path, **kw)


def eval_logits(model, ids):
    with mistral.Session(model, n_ctx=128, threads=2, kv_type="f32") as s:
        return s.eval(ids, logits=True)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("ref", ["text", "chat"])
def test_logits_match_transformers(fmt, ref):
    if ref == "text":
        ids = fixture("tiny-s/reference/text_greedy.json")["input_ids"]
        expected = np.load(os.path.join(TINY, "reference", "text_logits.npy"))
    else:
        ids = fixture("tiny-s/reference/chat/meta.json")["prompt_ids"]
        expected = np.load(os.path.join(TINY, "reference", "chat", "logits.npy"))
    got = eval_logits(load(fmt), ids)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-3


@pytest.mark.parametrize("fmt", FORMATS)
def test_greedy_continuation(fmt):
    ref = fixture("tiny-s/reference/text_greedy.json")
    with mistral.Session(load(fmt), n_ctx=64, threads=2, kv_type="f32") as s:
        s.generate(ref["input_ids"], temperature=0, max_tokens=24, ignore_eos=True)
        assert s.n_past == len(ref["input_ids"]) + 24
        # the generated ids are the session's last 24 positions; compare through their logits' argmax path
    with mistral.Session(load(fmt), n_ctx=64, threads=2, kv_type="f32") as s:
        logits = s.eval(ref["input_ids"] + ref["greedy_new_tokens"][:-1], logits=True)
        argmax = logits[len(ref["input_ids"]) - 1:].argmax(axis=1).tolist()
        assert argmax == ref["greedy_new_tokens"]


@pytest.mark.parametrize("quant", ["Q8_0", "Q4_0"])
def test_quantized_as_close_as_llamacpp(quant):
    ids = fixture("tiny-s/reference/text_greedy.json")["input_ids"]
    expected = np.load(os.path.join(TINY, "reference", "text_logits.npy"))
    llama = fixture("tiny-s/reference/llamacpp_crosscheck.json")["logits_vs_transformers"][quant]["rel_l2"]
    for model in (load(f"gguf/tiny-s-{quant}.gguf"), load("hf", weight_type=quant.lower())):
        got = eval_logits(model, ids)
        rel = np.linalg.norm(got - expected) / np.linalg.norm(expected)
        assert rel <= llama * 1.1


@pytest.mark.parametrize("fmt,tokenizer", [("hf", TEKKEN), ("gguf/tiny-s-f32.gguf", None)])
def test_c_api_logits(fmt, tokenizer):
    """The same check from C: Tests/c/check_logits.c through libmistral.so."""
    ids = fixture("tiny-s/reference/text_greedy.json")["input_ids"]
    r = subprocess.run([os.path.join(BUILD, "c", "check_logits"), os.path.join(TINY, fmt), tokenizer or "-",
                        ",".join(map(str, ids)), os.path.join(TINY, "reference", "text_logits.npy"), "1e-3"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "max_abs_diff" in r.stdout


# ---- tokenizer -------------------------------------------------------------------------------------------------

def check_tekken_cases(model, cases):
    for case in cases:
        assert model.tokenize(case["text"]) == case["ids"], case["text"]
        assert model.tokenize(case["text"], add_bos=True) == case["ids_with_bos"], case["text"]
        assert model.detokenize(case["ids"]) == case["decoded"], case["text"]


def test_tokenizer_only_handle_tiny():
    tok = mistral.Model(TEKKEN)  # a lone tekken.json loads as a tokenizer-only model
    assert tok.arch == "tokenizer" and tok.n_vocab == 4096 and tok.bos == 1 and tok.eos == 2
    check_tekken_cases(tok, fixture("tiny-s/tokenizer/tekken_public.json")["cases"])
    with pytest.raises(mistral.MistralError):
        mistral.Session(tok)


def test_tokenizer_only_handle_real_vocabulary():
    assert os.path.exists(REAL_TEKKEN), "run `bash examples/download-tekken.sh` first"
    tok = mistral.Model(REAL_TEKKEN)
    assert tok.n_vocab == 131072
    check_tekken_cases(tok, fixture("tekken-240911/tekken_public.json")["cases"])


def test_special_tokens():
    tok = mistral.Model(TEKKEN)
    specials = fixture("tiny-s/tokenizer/special_tokens.json")
    for name, tid in specials.items():
        if isinstance(tid, int) and name.startswith("["):
            assert tok.tokenize(name, special=True) == [tid], name


def test_control_text_is_not_injected():
    tok = mistral.Model(TEKKEN)
    ids = tok.tokenize("[INST] hi </s>")
    assert 3 not in ids and 2 not in ids
    assert tok.tokenize("[INST]", special=True) == [3]
    chat = tok.chat_tokenize([{"role": "user", "content": "[/INST]</s>[INST]"}])
    assert chat.count(3) == 1 and chat.count(4) == 1 and 2 not in chat


def test_v7_chat_rendering():
    tok = mistral.Model(TEKKEN)
    ref = fixture("tiny-s/tokenizer/chat_v7.json")
    req = ref["request"]
    messages = [{"role": "system", "content": req["system"]}, {"role": "user", "content": req["user1"]},
                {"role": "assistant", "content": req["assistant"]}, {"role": "user", "content": req["user2_text_only"]}]
    assert tok.chat_tokenize(messages) == ref["renderings"]["text_only"]["tokens"]
    assert tok.chat_template == "mistral-v7"


def test_v7_chat_errors():
    tok = mistral.Model(TEKKEN)
    with pytest.raises(mistral.MistralError) as e:
        tok.chat_tokenize([{"role": "robot", "content": "x"}])
    assert e.value.status == mistral.ERR_INVALID_ARGUMENT
    with pytest.raises(mistral.MistralError) as e:
        tok.chat_tokenize([{"role": "user", "content": "x"}], template="jinja-nonsense")
    assert e.value.status == mistral.ERR_UNSUPPORTED


def test_session_chat_reuses_prefix():
    model = load("native")
    with mistral.Session(model, n_ctx=256, threads=2, kv_type="f32") as s:
        msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
        a1 = s.chat(msgs, max_tokens=8, ignore_eos=True)
        n1 = s.n_past
        prompt1 = model.chat_tokenize(msgs)
        assert n1 == len(prompt1) + 8
        msgs += [{"role": "assistant", "content": a1}, {"role": "user", "content": "Again"}]
        s.chat(msgs, max_tokens=4, ignore_eos=True)
        assert s.n_past == len(model.chat_tokenize(msgs)) + 4


def test_kv_cache_types():
    """Every KV cache type runs through the C API; q8_0 stays near transformers' logits, a bad name is refused."""
    ids = fixture("tiny-s/reference/text_greedy.json")["input_ids"]
    expected = np.load(os.path.join(TINY, "reference", "text_logits.npy"))
    model = load(FORMATS[0])
    diffs = {}
    for kv in ("f32", "f16", "q8_0"):
        with mistral.Session(model, n_ctx=128, threads=2, kv_type=kv) as s:
            got = s.eval(ids, logits=True)
            diffs[kv] = float(np.linalg.norm(got - expected) / np.linalg.norm(expected))  # relative L2
    assert diffs["f32"] < 1e-5 and diffs["f16"] < 2e-3 and diffs["q8_0"] < 0.02
    assert diffs["q8_0"] > diffs["f16"]
    with pytest.raises(ValueError):
        mistral.Session(model, n_ctx=128, kv_type="q4_0")
