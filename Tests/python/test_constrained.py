"""Constrained decoding and sampling extras through the Python bindings: JSON schemas and a GBNF grammar on SmolLM2
(GGUF byte-level BPE, 49,152 ids) and tiny-s (Tekken, 4096 ids), outputs checked with `jsonschema` and a regex;
logprobs against log_softmax of mistral_eval's logits; logit bias; bad input. The C side: Tests/c/check_sampling.c."""
import json
import math
import os
import re
import subprocess

import numpy as np
import pytest

import mistral
from conftest import BUILD, FIXTURES, MODEL_PATH

import jsonschema  # noqa: E402 (Tests/run-all.sh and .ci/run install it)

TINY = os.path.join(FIXTURES, "tiny-s")

SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"},
                                      "email": {"type": "string", "maxLength": 16}}, "required": ["name", "age"]},
    {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]},
                                      "shade": {"type": "string", "maxLength": 8}}, "required": ["color"]},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 5},
    {"type": "object", "properties": {"ok": {"type": "boolean"}, "note": {"type": ["string", "null"], "maxLength": 10}},
     "required": ["ok", "note"]},
    {"type": "object", "properties": {"user": {"type": "object", "properties": {
        "id": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3}},
        "required": ["id", "tags"]}}, "required": ["user"]},
    {"anyOf": [{"type": "integer"},
               {"type": "object", "properties": {"error": {"type": "string", "maxLength": 12}}, "required": ["error"]}]},
    {"type": "object", "properties": {"version": {"const": 2}, "score": {"type": "number"}},
     "required": ["version", "score"]},
    {"type": "object", "properties": {"when": {"type": "string", "format": "date"},
                                      "at": {"type": "string", "format": "time"}}, "required": ["when"]},
    {"$defs": {"pt": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                      "required": ["x", "y"]}},
     "type": "array", "items": {"$ref": "#/$defs/pt"}, "maxItems": 3},
    {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"},
                                      "code": {"type": "string", "minLength": 2, "maxLength": 4},
                                      "flags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}},
     "required": ["id", "code"]},
]

PROMPTS = [
    "Describe a person as JSON.", "Give me a color.", "List a few numbers.", "Is the sky green?",
    "Make a user record.", "Return a result or an error.", "Score this answer: 42.", "When is the next meeting?",
    "Give some points on a plane.", "Create an identifier.",
]

# jsonschema checks "uuid" itself; the date/time grammar (llama.cpp's) fixes the shape but, like llama.cpp's,
# accepts day 29-31 in every month, so those two are checked by shape here.
FORMATS = jsonschema.FormatChecker(formats=["uuid"])
DATE = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])\Z")
TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{3})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)\Z")


def check_output(text, schema):
    value = json.loads(text)
    jsonschema.validate(value, schema, format_checker=FORMATS)
    if isinstance(value, dict) and "when" in value:
        assert DATE.match(value["when"]), value
        assert "at" not in value or TIME.match(value["at"]), value


@pytest.fixture(scope="module")
def tiny():
    m = mistral.Model(os.path.join(TINY, "hf"), tokenizer_path=os.path.join(TINY, "tokenizer", "tekken.json"))
    yield m
    m.close()


def run_grid(model, schemas, prompts, temps, max_tokens):
    failures = []
    with mistral.Session(model, n_ctx=1024, threads=2) as s:
        for si, schema in enumerate(schemas):
            for pi, prompt in enumerate(prompts):
                for temp in temps:
                    s.reset()
                    text = s.chat([{"role": "user", "content": prompt}], temperature=temp, seed=1 + pi,
                                  max_tokens=max_tokens, json_schema=schema)
                    try:
                        assert s.last_stop_reason == "eog", s.last_stop_reason
                        check_output(text, schema)
                    except Exception as e:  # collect them all, report together
                        failures.append((si, pi, temp, text, repr(e)))
    return failures


def test_json_schemas_on_smollm2(model):
    """The full grid on the 49,152-id byte-level BPE vocabulary: 10 schemas x 10 prompts x temperature 0 and 0.8."""
    failures = run_grid(model, SCHEMAS, PROMPTS, [0.0, 0.8], max_tokens=200)
    assert not failures, failures[:5]


def test_json_schemas_on_tiny_s_tekken(tiny):
    """The Tekken path (tiny-s, random weights: its choices are close to a random walk through the grammar)."""
    failures = run_grid(tiny, SCHEMAS, PROMPTS[:3], [0.0, 0.8], max_tokens=700)
    assert not failures, failures[:5]


GRAMMAR = 'root ::= "[" num (", " num){0,7} "]"\nnum ::= [1-9] [0-9]{0,3} | "0"  # no leading zeros\n'
LIST = re.compile(r"\[(0|[1-9]\d{0,3})(, (0|[1-9]\d{0,3})){0,7}\]\Z")


@pytest.mark.parametrize("which", ["smollm2", "tiny-s"])
def test_gbnf_list_of_integers(which, model, tiny):
    m = model if which == "smollm2" else tiny
    with mistral.Session(m, n_ctx=512, threads=2) as s:
        for prompt in PROMPTS[:4]:
            for temp in (0.0, 0.8):
                s.reset()
                text = s.chat([{"role": "user", "content": prompt}], temperature=temp, seed=3, max_tokens=64,
                              grammar=GRAMMAR)
                assert LIST.match(text), text
                assert s.last_stop_reason == "eog"


def test_json_object_and_stream(model):
    """A closed JSON-schema object through stream(), which takes generate()'s arguments. (With the open schema
    {"type": "object"} greedy SmolLM2 repeats keys until max_tokens, so whether it closes within a budget depends
    on the last bits of the logits; here the grammar itself ends the object after its two properties.)"""
    schema = ('{"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},'
              ' "required": ["name", "age"], "additionalProperties": false}')
    with mistral.Session(model, n_ctx=512, threads=2) as s:
        pieces = list(s.stream("<|im_start|>user\nGive me a JSON object.<|im_end|>\n<|im_start|>assistant\n",
                               json_schema=schema, temperature=0, max_tokens=120, logprobs=2))
        text = "".join(pieces)
        obj = json.loads(text)
        assert isinstance(obj, dict) and set(obj) == {"name", "age"} and isinstance(obj["age"], int), text
        assert s.last_stop_reason == "eog", s.last_stop_reason
        assert all(isinstance(p, mistral.Piece) for p in pieces)
        entries = [e for p in pieces for e in p.logprobs]
        assert len(entries) == s.last_n_generated
        assert b"".join(bytes(e["bytes"]) for e in entries).decode() == text


def log_softmax(row):
    row = row.astype(np.float64)
    m = row.max()
    return row - m - math.log(np.exp(row - m).sum())


@pytest.mark.parametrize("constrained", [False, True])
def test_logprobs_equal_log_softmax_of_eval_logits(model, constrained):
    """Each sampled token's logprob and its top alternatives are log_softmax of the logits mistral_eval gives for
    the same context (the raw distribution: before the grammar mask, bias and temperature), within 1e-4."""
    prompt = model.tokenize("<|im_start|>user\nTell me about cats.<|im_end|>\n<|im_start|>assistant\n", special=True)
    kw = {"json_schema": SCHEMAS[0]} if constrained else {"ignore_eos": True}
    with mistral.Session(model, n_ctx=512, threads=2) as a:
        out = a.generate(prompt, temperature=0.8, seed=11, max_tokens=24, logprobs=5, **kw)
    content = out.logprobs["content"]
    assert len(content) > 5
    ids = [e["id"] for e in content]
    assert b"".join(bytes(e["bytes"]) for e in content).decode() == out
    with mistral.Session(model, n_ctx=512, threads=2) as b:
        rows = [b.eval(prompt, logits=True)[-1]] + [b.eval([t], logits=True)[0] for t in ids[:-1]]
    worst = 0.0
    for e, row in zip(content, rows):
        lsm = log_softmax(row)
        worst = max(worst, abs(lsm[e["id"]] - e["logprob"]))
        top = np.argsort(-lsm, kind="stable")[:5]
        assert [t["id"] for t in e["top_logprobs"]] == top.tolist()
        for t in e["top_logprobs"]:
            assert abs(lsm[t["id"]] - t["logprob"]) < 1e-4
            assert bytes(t["bytes"]) == model.token_to_piece(t["id"])
        assert e["token"] == bytes(e["bytes"]).decode("utf-8", "replace")
    assert worst < 1e-4


def test_logprobs_off_by_default(session):
    out = session.generate("Hello", max_tokens=3, temperature=0)
    assert isinstance(out, mistral.Completion) and out.logprobs is None
    out = session.generate("Hello", max_tokens=3, temperature=0, logprobs=True)
    assert all(e["top_logprobs"] == [] and e["logprob"] <= 0 for e in out.logprobs["content"])


def test_logit_bias_bans_and_forces(model):
    prompt = "<|im_start|>user\nWrite a sentence about the sea.<|im_end|>\n<|im_start|>assistant\n"
    with mistral.Session(model, n_ctx=512, threads=2) as s:
        greedy = s.generate(prompt, temperature=0, max_tokens=1, logprobs=True).logprobs["content"][0]["id"]
        s.reset()
        out = s.generate(prompt, temperature=0, max_tokens=12, logit_bias={greedy: float("-inf")}, logprobs=True)
        assert greedy not in [e["id"] for e in out.logprobs["content"]]
        # every token whose text has an "e" banned: none can appear, whatever is sampled
        with_e = {t: float("-inf") for t in range(model.n_vocab) if b"e" in model.token_to_piece(t)}
        assert len(with_e) > 10000
        s.reset()
        out = s.generate(prompt, temperature=0.8, seed=5, max_tokens=40, ignore_eos=True, logit_bias=with_e)
        assert s.last_n_generated == 40 and "e" not in out, out
        # a large positive bias forces a token
        forced = model.tokenize(" banana")[0]
        s.reset()
        out = s.generate(prompt, temperature=0.8, seed=5, max_tokens=3, logit_bias={forced: 100.0}, logprobs=True)
        assert [e["id"] for e in out.logprobs["content"]] == [forced] * 3


def test_bad_constraints(session, model):
    with pytest.raises(mistral.MistralError) as e:
        session.generate("Hi", grammar='root ::= "a" | "b" @')
    assert e.value.status == mistral.ERR_INVALID_ARGUMENT and "line 1, column 20" in e.value.message
    with pytest.raises(mistral.MistralError) as e:
        session.generate("Hi", grammar='root ::= x\nx ::= x "a"')
    assert "left-recursive" in e.value.message
    with pytest.raises(mistral.MistralError) as e:
        session.generate("Hi", json_schema='{"type": "object", "properties": ')
    assert e.value.status == mistral.ERR_INVALID_ARGUMENT and "json_schema: invalid JSON at byte" in e.value.message
    with pytest.raises(mistral.MistralError) as e:
        session.generate("Hi", json_schema={"type": "string", "pattern": "^a$"})
    assert "pattern is not supported" in e.value.message
    with pytest.raises(mistral.MistralError) as e:
        session.generate("Hi", logit_bias={model.n_vocab: -1.0})
    assert "outside the vocabulary" in e.value.message
    with pytest.raises(ValueError):
        session.generate("Hi", grammar='root ::= "a"', json_schema={})
    with pytest.raises(ValueError):
        session.generate("Hi", logit_bias={1: float("nan")})
    with pytest.raises(ValueError):
        session.generate("Hi", logit_bias={1: float("inf")})
    with pytest.raises(TypeError):
        session.generate("Hi", logit_bias=[1, 2])
    with pytest.raises(TypeError):
        session.generate("Hi", json_schema=5)
    with pytest.raises(ValueError):
        session.generate("Hi", logprobs=257)
    # the session is still usable, and a grammar nothing in the vocabulary can start is reported, not looped on
    with pytest.raises(mistral.MistralError) as e:
        session.generate("Hi", grammar='root ::= "a" "\\uD800"', max_tokens=4)  # a surrogate: no UTF-8 for it
    assert "no token of the vocabulary" in e.value.message
    assert session.generate("Hi", max_tokens=2, temperature=0) is not None


def test_schema_to_grammar_text():
    g = mistral.json_schema_to_grammar({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    assert 'root ::= "{" space n-kv space "}"' in g.splitlines()
    assert 'root ::= ("true" | "false")' in mistral.json_schema_to_grammar('{"type": "boolean"}').splitlines()
    with pytest.raises(mistral.MistralError):
        mistral.json_schema_to_grammar("{")


def test_sampling_from_c():
    exe = os.path.join(BUILD, "c", "check_sampling")
    prompt = "<|im_start|>user\nList some numbers.<|im_end|>\n<|im_start|>assistant\n"
    r = subprocess.run([exe, MODEL_PATH, prompt], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failures" in r.stdout
