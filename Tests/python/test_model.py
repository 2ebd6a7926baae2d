"""The Python bindings against llama.cpp's reference outputs on the real SmolLM2 Q4_1 model."""
import numpy as np
import pytest

import mistral
from conftest import CHAT_PROMPT, fixture


def test_version(model):
    assert mistral.version().count(".") == 2
    assert model.arch == "llama"
    assert model.n_vocab == 49152 and model.n_layer == 30 and model.n_embd == 576
    assert model.bos == 1 and model.eos == 2 and not model.add_bos
    assert model.is_eog(2) and not model.is_eog(504)


@pytest.mark.parametrize("case", fixture("smollm2-llamacpp/tokenize_Q4_1.json")["cases"], ids=lambda c: c["text"][:20])
def test_tokenize_matches_llamacpp(model, case):
    assert model.tokenize(case["text"], special=True) == case["ids"]
    assert model.tokenize(case["text"], special=False) == case["ids_no_parse_special"]


@pytest.mark.parametrize("name", ["greedy_chat_Q4_1_ignore_eos.json", "greedy_once_Q4_1_ignore_eos.json"])
def test_detokenize_pieces(model, name):
    ref = fixture(f"smollm2-llamacpp/{name}")
    assert model.tokenize(ref["prompt"], special=True) == ref["prompt_token_ids"]
    for token, piece in zip(ref["generated_token_ids"], ref["generated_pieces"]):
        assert model.token_to_piece(token, special=True).decode("utf-8") == piece
    assert model.detokenize(ref["generated_token_ids"], special=True) == ref["generated_text"]


@pytest.mark.parametrize("name", ["greedy_chat_Q4_1_ignore_eos.json", "greedy_once_Q4_1_ignore_eos.json"])
def test_teacher_forced_logits(session, name):
    """Along llama.cpp's greedy path: argmax agrees where llama.cpp's margin >= 0.5; its token's logit within 1.0."""
    ref = fixture(f"smollm2-llamacpp/{name}")
    prompt, gen = ref["prompt_token_ids"], ref["generated_token_ids"]
    logits = session.eval(prompt + gen[:-1], logits=True)
    assert logits.shape == (len(prompt) + len(gen) - 1, 49152)
    for i, top in enumerate(ref["top5_per_step"]):
        row = logits[len(prompt) - 1 + i]
        token, value = top[0]
        assert abs(row[token] - value) < 1.0, f"step {i}"
        if top[0][1] - top[1][1] >= 0.5:
            assert int(np.argmax(row)) == token, f"step {i}"


def test_chat_greedy_text(session):
    ref = fixture("smollm2-llamacpp/greedy_chat_Q4_1.json")
    text = session.generate(CHAT_PROMPT, temperature=0, max_tokens=48)
    assert text == ref["generated_text_until_eog"] == "The capital of France is Paris."
    assert session.last_stop_reason == "eog"
    # the end-of-turn token stays in the context so the next turn continues the chat
    assert session.n_past == len(ref["prompt_token_ids"]) + 7 + 1


def test_callback_stops_and_iterator(session, model):
    seen = []
    text = session.generate(CHAT_PROMPT, temperature=0, on_token=lambda p, t: seen.append((p, t)) or len(seen) >= 3)
    assert len(seen) == 3 and text == "".join(p for p, _ in seen)
    assert session.last_stop_reason == "callback"
    session.reset()
    pieces = list(session.stream(CHAT_PROMPT, temperature=0))
    assert "".join(pieces) == "The capital of France is Paris."
    session.reset()
    it = session.stream(CHAT_PROMPT, temperature=0, max_tokens=40, ignore_eos=True)
    first = next(it)
    it.close()  # stops generation early
    assert first == "The" and session.n_past < 16 + 40


def test_callback_exception_is_reraised(session):
    class Boom(Exception):
        pass

    def explode(piece, token):
        raise Boom(piece)

    with pytest.raises(Boom):
        session.generate(CHAT_PROMPT, temperature=0, on_token=explode)
    assert session.last_stop_reason == "callback"


def test_seeded_sampling_is_reproducible(model):
    outs = []
    for seed in (42, 42, 7):
        with mistral.Session(model, n_ctx=256, threads=2) as s:
            outs.append(s.generate("Once upon a time", temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=seed,
                                   max_tokens=24, ignore_eos=True))
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_stop_string(session):
    text = session.generate(CHAT_PROMPT, temperature=0, stop=[" Paris"])
    assert text == "The capital of France is"
    assert session.last_stop_reason == "stop_string"


def test_multi_turn_appends(session):
    session.generate(CHAT_PROMPT, temperature=0)
    n = session.n_past
    answer = session.generate("\n<|im_start|>user\nAnd of Germany?<|im_end|>\n<|im_start|>assistant\n", temperature=0)
    assert "Berlin" in answer
    assert session.n_past > n


def test_chat_twice_after_end_of_turn(session):
    """A turn that ends on <|im_end|> keeps it in the context; the next chat call reuses that prefix."""
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    answer = session.chat(msgs, temperature=0)
    assert answer == "The capital of France is Paris." and session.last_stop_reason == "eog"
    msgs += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And of Germany?"}]
    assert "Berlin" in session.chat(msgs, temperature=0)
