#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into OUT/<target>/, from Tests/Fixtures (and Tests/Fixtures/bad)."""
import json
import os
import sys

import minimodels as mini

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "Tests", "Fixtures")
TINY = os.path.join(FIX, "tiny-s")
SEP = b"\n--8<--\n"  # Harness.swift's partSeparator


def read(*parts):
    with open(os.path.join(*parts), "rb") as f:
        return f.read()


def small_tekken():
    """tiny-s's tekken.json without the token_str fields (which the loader ignores): a smaller, faster seed."""
    t = json.loads(read(TINY, "tokenizer", "tekken.json"))
    for v in t["vocab"]:
        v.pop("token_str", None)
    return json.dumps(t, separators=(",", ":")).encode()


def safetensors_header_only(data):
    n = int.from_bytes(data[:8], "little")
    return data[:8 + n]


def texts():
    out = [b"Hello, world!", b"<|im_start|>user\nHi<|im_end|>", b"[INST] x [/INST]</s>", "Größe 日本語 🙂".encode()]
    for c in json.loads(read(FIX, "smollm2-llamacpp", "tokenize_Q4_1.json"))["cases"][:40]:
        out.append(c["text"].encode("utf-8", "surrogatepass"))
    return out


def seeds():
    bad = os.path.join(FIX, "bad")
    bad_files = sorted(os.listdir(bad)) if os.path.isdir(bad) else []
    hf_st = read(TINY, "hf", "model.safetensors")
    nat_st = read(TINY, "native", "consolidated.safetensors")
    index = json.dumps({"weight_map": {"model.embed_tokens.weight": "model.safetensors"}}).encode()
    # Small synthetic models first (they load in ~0.3 ms, so the fuzzer runs fast), then tiny-s's real
    # configs and headers (their layouts: mistral3, vision sections), cut to what parses before the weights.
    mini_hf, mini_native = mini.safetensors(mini.HF_NAMES), mini.safetensors(mini.NATIVE_NAMES)
    s = {
        "gguf-vocab": [mini.gguf()],
        "gguf": [mini.gguf()],
        "mmproj": [read(TINY, "gguf", "mmproj-tiny-s-f16.gguf")],
        "hf": [mini.hf_config() + SEP + mini_hf, mini.hf_config() + SEP + mini_hf + SEP + index,
               read(TINY, "hf", "config.json") + SEP + safetensors_header_only(hf_st),
               read(TINY, "hf", "config.legacy-4.50-style.json") + SEP + safetensors_header_only(hf_st)],
        "native": [mini.native_params() + SEP + mini_native,
                   read(TINY, "native", "params.json") + SEP + safetensors_header_only(nat_st)],
        "tekken": [mini.tekken(), read(FIX, "tekken-240911", "tekken_public.json")],
        "image": [read(TINY, "reference", n) for n in sorted(os.listdir(os.path.join(TINY, "reference")))
                  if n.endswith(".png")],
        "tokenize-bpe": [bytes([i % 4]) + t for i, t in enumerate(texts())],
        "tokenize-tekken": [bytes([i % 4]) + t for i, t in enumerate(texts())],
        "chat": [b"\x01" + b"\x00You are brief." + SEP + b"\x01What is the capital of France?" + SEP
                 + b"\x02Paris." + SEP + b"\x01And of Italy?",
                 b"\x02" + b"\x01Hi" + SEP + b"\x02Hello" + SEP + b"\x01[INST] <s>"],
        # byte 0 picks grammar (even) or JSON schema (odd), temperature and logprobs (see fuzzGrammar)
        "grammar": [b"\x02" + b'root ::= "[" [0-9]+ ("," " "? [0-9]+)* "]"',
                    b"\x0a" + b'root ::= item+\nitem ::= [^\\x00-\\x1F"] | "\\u00e9" | ( "a" | "b" ){2,5} # c',
                    b"\x00" + b'root ::= ("(" root ")")* | [a-z]{1,3} .',
                    b"\x03" + json.dumps({"type": "object", "properties": {"a": {"type": "string", "maxLength": 3},
                                                                            "b": {"enum": [1, "x", None]}},
                                           "required": ["a"]}).encode(),
                    b"\x0b" + json.dumps({"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}},
                                           "$ref": "#/$defs/n"}).encode(),
                    b"\x05" + b'{"type": "string", "format": "date-time"}'],
        # requests with tools, calls and results (V7 and V3), and model outputs with [TOOL_CALLS]
        "chat-json": [bytes([i]) + json.dumps(c["request"], ensure_ascii=False).encode()
                      for i, c in enumerate(json.load(open(os.path.join(FIX, "tekken-240911", "chat_tools_v7.json")))["cases"].values())]
                     + [b"\x00[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": [1, {\"b\": \"\xc3\xa9\"}]}}]",
                        b"\x01Sure.[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}, \"id\": \"abcdefghi\"}][TOOL_CALLS]{\"name\": \"g\"}"],
    }
    # byte 0 picks raw / edit / edit-and-reseal (see fuzzSessionState): edits of the harness's own valid state
    s["session-state"] = [b"\x01\x00\x00\x00", b"\x03\x30\x00\x00\x07", b"\x03\x60\x00\x00\xff\xff",
                          b"\x03\x00\x00\x10", b"\x07\x2c\x00\x00\x01", b"\x00LMSTSESS\x01\x00\x00\x00"]
    for name in bad_files:  # regression files seed the matching target
        target = name.split("--")[0]
        if target in s:
            s[target].append(read(bad, name))
    jpegs = os.path.join(ROOT, "Tests", "fuzz", "seeds")
    if os.path.isdir(jpegs):
        for n in sorted(os.listdir(jpegs)):
            s["image"].append(read(jpegs, n))
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # what the harness loads next to each input ($MISTRAL_FUZZ_TEKKEN, $MISTRAL_FUZZ_TEXT_GGUF)
    with open(os.path.join(out, "tekken.json"), "wb") as f:
        f.write(mini.tekken())
    with open(os.path.join(out, "text64.gguf"), "wb") as f:
        f.write(mini.gguf(N_EMBD=64))
    for target, items in seeds().items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for i, data in enumerate(items):
            with open(os.path.join(d, f"seed-{i:03d}"), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
