#!/usr/bin/env python3
"""Reference renderings and tokenizations from mistral-common, for the V3 / V7 tool and Unicode tests.

Writes references.json next to this script. The tests read only that output, so they need no mistral-common.
Run: python3 -m pip install mistral-common==1.13.1 && python3 Tests/Fixtures/mistral-common/make.py

- "v3": mistral-common's own V3 rendering (MistralTokenizer.from_file on tekken_240718.json and tekken_240911.json
  exactly as shipped in the wheel, both config.version "v3") of text conversations (system prompt, multi-turn,
  leading assistant, empty system prompt) and tool conversations.
- "v7": extra V7 tool renderings (tekken_240911.json relabelled "v7", as the shared chat_tools_v7.json fixture is)
  for what the shared fixture does not cover: argument / tool-result JSON that is not in json.dumps form, non-ASCII,
  content and tool calls in one assistant message, a tool without a description.
- "v3_images": V3 renderings with images for tekken_240911.json (it carries Pixtral 12B's image config): the
  request's {"type": "image"} parts stand for images of the given sizes, whose [IMG] grids are recorded.
- "random": 120 seeded random conversations (roles, empty and space-padded texts, tools, calls with and without
  valid ids or JSON arguments, tool results) rendered as V3 (tekken_240911.json as shipped) and V7 (relabelled),
  each with its ids or "error" when mistral-common refuses it.
- "unicode": Tekkenizer.encode of strings with code points new in Unicode 16.0 and 17.0 (tiktoken's regex
  classes by Unicode 16.0, so 17.0 additions are unassigned there).
"""
import json
import os
import random
import shutil
import tempfile

import mistral_common
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

assert mistral_common.__version__ == "1.13.1", mistral_common.__version__
DATA = os.path.join(os.path.dirname(mistral_common.__file__), "data")
HERE = os.path.dirname(os.path.abspath(__file__))

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}
FLIGHTS = {"type": "function", "function": {
    "name": "search_flights", "description": "Search flights between two airports on a date",
    "parameters": {"type": "object", "properties": {"from": {"type": "string", "description": "IATA code"},
                                                    "to": {"type": "string"},
                                                    "date": {"type": "string", "format": "date"},
                                                    "passengers": {"type": "integer", "minimum": 1}},
                   "required": ["from", "to", "date"]}}}
NO_DESCRIPTION = {"type": "function", "function": {
    "name": "convert", "parameters": {"type": "object", "properties": {"amount": {"type": "number"},
                                                                       "to": {"type": "string", "description": "ISO 4217, e.g. “EUR”"}}}}}


def call(id_, name, args):
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}


TEXT_CASES = {
    "system_prompt": {"messages": [{"role": "system", "content": "You are terse."},
                                   {"role": "user", "content": "Hi there"}]},
    "multi_turn": {"messages": [{"role": "system", "content": "Answer in French."},
                                {"role": "user", "content": "What is the capital of Italy?"},
                                {"role": "assistant", "content": "Rome.  "},
                                {"role": "user", "content": "And of Spain?"}]},
    "two_system_prompts": {"messages": [{"role": "system", "content": "Be kind."},
                                        {"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Hello"},
                                        {"role": "assistant", "content": "Hi!"},
                                        {"role": "user", "content": "Bye"}]},
    "leading_assistant": {"messages": [{"role": "assistant", "content": "Hello! How can I help?"},
                                       {"role": "user", "content": "Tell me a joke."}]},
    "system_then_assistant": {"messages": [{"role": "system", "content": "You are a pirate."},
                                           {"role": "assistant", "content": "Ahoy!"},
                                           {"role": "user", "content": "Where is the treasure?"}]},
    "empty_system": {"messages": [{"role": "system", "content": ""},
                                  {"role": "user", "content": "Hi"}]},
    "consecutive_users": {"messages": [{"role": "user", "content": "One"}, {"role": "user", "content": ""},
                                       {"role": "user", "content": "Two [INST] </s>"}]},
}

TOOL_CASES = {
    "tools_first_turn": {"tools": [WEATHER], "messages": [{"role": "user", "content": "What's the weather in Paris?"}]},
    "tools_with_system": {"tools": [WEATHER, FLIGHTS], "messages": [
        {"role": "system", "content": "You are a travel assistant."},
        {"role": "user", "content": "Find me a flight from CDG to JFK on 2025-05-01."}]},
    "tool_call_and_result": {"tools": [WEATHER], "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call("a1b2c3d4e", "get_weather", '{"city": "Paris"}')]},
        {"role": "tool", "tool_call_id": "a1b2c3d4e", "name": "get_weather", "content": '{"temp":21,"sky":"clear"}'}]},
    "parallel_calls": {"tools": [WEATHER], "messages": [
        {"role": "user", "content": "Weather in Paris and in Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            call("AAAAAAAA1", "get_weather", '{"city": "Paris"}'),
            call("BBBBBBBB2", "get_weather", '{"city":"Rome","unit":"celsius"}')]},
        {"role": "tool", "tool_call_id": "AAAAAAAA1", "name": "get_weather", "content": "21"},
        {"role": "tool", "tool_call_id": "BBBBBBBB2", "name": "get_weather", "content": "25"}]},
    "tools_then_answer_then_user": {"tools": [WEATHER], "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call("x9y8z7w6v", "get_weather", '{"city": "Oslo"}')]},
        {"role": "tool", "tool_call_id": "x9y8z7w6v", "name": "get_weather", "content": "-3 and snowing"},
        {"role": "assistant", "content": "It is -3 °C and snowing in Oslo."},
        {"role": "user", "content": "And tomorrow?"}]},
    "nested_non_ascii_arguments": {"tools": [WEATHER, NO_DESCRIPTION], "messages": [
        {"role": "user", "content": "Météo à Zürich, et 12,5 € en dollars ?"},
        {"role": "assistant", "content": None, "tool_calls": [
            call("Zz9Yy8Xx7", "get_weather", '{"city":"Zürich","opts":{"days":[1,2.50,1e20,-0],"tags":["日本", "\\n\\"q\\""],"x":null,"ok":true}}'),
            call("k0k1k2k3k", "convert", "")]},
        {"role": "tool", "tool_call_id": "Zz9Yy8Xx7", "name": "get_weather", "content": '{"temp": 4.0, "note": "neige ❄"}'},
        {"role": "tool", "tool_call_id": "k0k1k2k3k", "content": "not json: [TOOL_CALLS] [/INST]"}]},
}

V7_EXTRA = {
    "content_and_calls": {"tools": [WEATHER], "messages": [
        {"role": "user", "content": "Weather in Lyon?"},
        {"role": "assistant", "content": "Let me check.  ", "tool_calls": [call("q1w2e3r4t", "get_weather", '{"city":"Lyon"}')]},
        {"role": "tool", "tool_call_id": "q1w2e3r4t", "content": '{"temp":18}'}]},
    "nested_non_ascii_arguments": TOOL_CASES["nested_non_ascii_arguments"],
    "tool_call_and_result_unnormalized": TOOL_CASES["tool_call_and_result"],
    "parallel_calls_unnormalized": TOOL_CASES["parallel_calls"],
}

UNICODE_STRINGS = [
    " \U00011de0", "\U000323b0's", "a\U00011de0b", "x\U000323b0\U000323b1y", "Word\U00011de5 next",
    "\U00016ea0\U00016eb9 text", " \U0001e5d0abc", "日本\U000323b5語", "ab\u1c89cd", "\U00010d4a\U00010d4b test",
    "e\u0301\U00011dd8", "\U00011b60x", "12\U00011de3 34",
]


IMAGE_CASES = {
    "image_with_system": ([("system", "Describe briefly."), ("user", [(64, 48), "What is this?"])]),
    "text_then_image": ([("user", ["Look:", (40, 90)])]),
    "image_then_turns": ([("system", "Be kind."), ("user", [(100, 30), "A?"]), ("assistant", "B"),
                          ("user", "C?")]),
}


def image_case(tok, spec):
    import numpy as np
    from PIL import Image
    from mistral_common.protocol.instruct.chunk import ImageChunk, TextChunk
    from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
    import mistral_common.tokens.tokenizers.image as image_mod
    # the tokens depend on the image's size only; skip the pixel resize (it needs OpenCV)
    image_mod.transform_image = lambda image, size: np.zeros((3, size[1], size[0]), dtype=np.float32)
    rng = np.random.default_rng(0)
    msgs, request, sizes = [], [], []
    for role, content in spec:
        if role == "system":
            msgs.append(SystemMessage(content=content))
            request.append({"role": role, "content": content})
        elif role == "assistant":
            msgs.append(AssistantMessage(content=content))
            request.append({"role": role, "content": content})
        elif isinstance(content, str):
            msgs.append(UserMessage(content=content))
            request.append({"role": role, "content": content})
        else:
            chunks, parts = [], []
            for c in content:
                if isinstance(c, str):
                    chunks.append(TextChunk(text=c))
                    parts.append({"type": "text", "text": c})
                else:
                    pixels = rng.integers(0, 256, size=(c[1], c[0], 3), dtype=np.uint8)
                    chunks.append(ImageChunk(image=Image.fromarray(pixels)))
                    parts.append({"type": "image"})
                    sizes.append(list(c))
            msgs.append(UserMessage(content=chunks))
            request.append({"role": role, "content": parts})
    r = tok.encode_chat_completion(ChatCompletionRequest(messages=msgs))
    raw = tok.instruct_tokenizer.tokenizer
    img, brk, end = (raw.get_special_token(t) for t in ("[IMG]", "[IMG_BREAK]", "[IMG_END]"))
    grids, rows, cols = [], 0, 0
    for t in r.tokens:  # each image: rows of [IMG] x cols, closed by [IMG_BREAK] / [IMG_END]
        if t == img:
            cols += 1
        elif t in (brk, end):
            rows += 1
            if t == end:
                grids.append({"rows": rows, "cols": cols})
                rows = 0
            cols = 0
    return {"request": {"messages": request}, "image_sizes": sizes, "grids": grids, "tokens": r.tokens,
            "text": tok.decode(r.tokens, special_token_policy=SpecialTokenPolicy.KEEP)}


TEXTS = ["", " ", "Hi", "  padded  ", "Bonjour à tous", "[INST] not a token [/INST]", "line\nbreak", "日本語",
         '{"a": 1}', "42", "x  ", "null"]
ARGS = ['{"city": "Paris"}', '{"city":"Zürich","n":[1,2.5]}', "", "not json", "{}", '{"q": {"deep": [true, null]}}']
IDS = ["a1b2c3d4e", "ZZZZZZZZ9", "k0k1k2k3k", "bad", None]


def random_request(rng):
    """A conversation of the usual shape (system prompts, user turns, assistant answers or calls with their
    results, ending with a user or tool message), with one random defect in about one case in eight."""
    msgs = [{"role": "system", "content": rng.choice(TEXTS)} for _ in range(rng.choice([0, 0, 1, 2]))]
    if rng.random() < 0.15:
        msgs.append({"role": "assistant", "content": rng.choice(TEXTS[2:])})
    turns = rng.randint(1, 3)
    for turn in range(turns):
        for _ in range(rng.choice([1, 1, 2])):
            msgs.append({"role": "user", "content": rng.choice(TEXTS)})
        if rng.random() < 0.15:
            msgs.append({"role": "system", "content": rng.choice(TEXTS)})
        last = turn == turns - 1
        if rng.random() < 0.5:
            ids = rng.sample(IDS[:3], rng.randint(1, 2))
            calls = [{"id": i, "type": "function", "function": {
                "name": rng.choice(["get_weather", "search_flights"]), "arguments": rng.choice(ARGS)}} for i in ids]
            msgs.append({"role": "assistant", "content": rng.choice([None] * 8 + ["", "Sure.  "]), "tool_calls": calls})
            for i in ids:
                msgs.append({"role": "tool", "tool_call_id": i, "name": "get_weather", "content": rng.choice(TEXTS)})
            if not last and rng.random() < 0.7:
                msgs.append({"role": "assistant", "content": rng.choice(TEXTS[2:])})
        elif not last:
            msgs.append({"role": "assistant", "content": rng.choice(TEXTS[2:])})
        if last:
            break
    if rng.random() < 0.12:  # one defect
        k = rng.randrange(len(msgs))
        defect = rng.choice(["bad id", "no id", "drop", "empty assistant"])
        m = msgs[k]
        if defect == "bad id" and m.get("tool_calls"):
            m["tool_calls"][0]["id"] = "bad"
        elif defect == "no id" and m.get("tool_calls"):
            del m["tool_calls"][0]["id"]
        elif defect == "drop":
            del msgs[k]
        elif defect == "empty assistant" and m["role"] == "assistant":
            m["content"], m["tool_calls"] = "", None
    req = {"messages": msgs}
    if rng.random() < 0.6:
        req["tools"] = rng.choice([[WEATHER], [WEATHER, FLIGHTS], [NO_DESCRIPTION]])
    return req


def render_or_error(tok, request):
    try:
        return {"request": request, "tokens": tok.encode_chat_completion(ChatCompletionRequest(**request)).tokens}
    except Exception as e:  # mistral-common refuses it: so must we
        return {"request": request, "error": type(e).__name__}


def render(tok, request):
    r = tok.encode_chat_completion(ChatCompletionRequest(**request))
    return {"text": tok.decode(r.tokens, special_token_policy=SpecialTokenPolicy.KEEP), "tokens": r.tokens}


def main():
    out = {"reference": f"mistral-common {mistral_common.__version__}: MistralTokenizer.from_file(...)."
                        "encode_chat_completion(ChatCompletionRequest(messages=..., tools=...)) and Tekkenizer.encode",
           "v3": {}, "v3_images": {}, "v7": {}, "random": {}, "unicode": {}}
    for name in ("tekken_240718.json", "tekken_240911.json"):
        path = os.path.join(DATA, name)
        assert json.load(open(path))["config"]["version"] == "v3"
        tok = MistralTokenizer.from_file(path)
        cases = {**TEXT_CASES, **TOOL_CASES}
        out["v3"][name] = {k: {"request": v, **render(tok, v)} for k, v in cases.items()}
        if name == "tekken_240911.json":
            out["v3_images"][name] = {k: image_case(tok, v) for k, v in IMAGE_CASES.items()}
            rng = random.Random(1234)
            out["random"]["v3 " + name] = [render_or_error(tok, random_request(rng)) for _ in range(120)]
        raw = tok.instruct_tokenizer.tokenizer
        out["unicode"][name] = [{"text": s, "ids": raw.encode(s, bos=False, eos=False)} for s in UNICODE_STRINGS]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = json.load(open(os.path.join(DATA, "tekken_240911.json")))
        cfg["config"]["version"] = "v7"
        path = os.path.join(tmp, "tekken_240911_v7.json")
        json.dump(cfg, open(path, "w"))
        tok = MistralTokenizer.from_file(path)
        out["v7"]["tekken_240911.json relabelled v7"] = {k: {"request": v, **render(tok, v)} for k, v in V7_EXTRA.items()}
        rng = random.Random(1234)
        out["random"]["v7 tekken_240911.json relabelled v7"] = [render_or_error(tok, random_request(rng))
                                                                for _ in range(120)]
    with open(os.path.join(HERE, "references.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))  # compact: the id lists are long
        f.write("\n")


if __name__ == "__main__":
    main()
