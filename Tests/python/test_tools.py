"""Tool calling through the Python binding and the C client: mistral-common's V7 tool renderings (shared
chat_tools_v7.json, full and tiny vocabulary), V3 renderings of the shipped v3 Tekken files and Unicode-17 code
points (Tests/Fixtures/mistral-common/references.json, made by its make.py), and tool-call parsing."""
import json
import os
import re
import subprocess

import pytest

import mistral
from conftest import BUILD, FIXTURES, MODEL_PATH, ROOT, fixture

TINY_TEKKEN = os.path.join(FIXTURES, "tiny-s", "tokenizer", "tekken.json")
TEKKEN = {name: os.environ.get("MISTRAL_" + name.upper().replace(".JSON", ""), os.path.join(ROOT, "models", name))
          for name in ("tekken_240911.json", "tekken_240718.json")}
REFS = fixture("mistral-common/references.json")
TOOLS_V7 = fixture("tekken-240911/chat_tools_v7.json")["cases"]
CLIENT = os.environ.get("MISTRAL_CHECK_TOOLS", os.path.join(BUILD, "c", "check_tools"))


@pytest.fixture(scope="module")
def vocab():
    for path in TEKKEN.values():
        assert os.path.exists(path), f"missing {path}: run `bash examples/download-tekken.sh` first"
    models = {name: mistral.Model(path) for name, path in TEKKEN.items()}
    models["tiny"] = mistral.Model(TINY_TEKKEN)
    yield models
    for m in models.values():
        m.close()


# ---- Must show 1: V7 tools, five cases, full and tiny vocabulary ------------------------------------------------
@pytest.mark.parametrize("name", sorted(TOOLS_V7))
def test_v7_tool_cases(vocab, name):
    case = TOOLS_V7[name]
    req = case["request"]
    full = vocab["tekken_240911.json"].chat_tokenize(req["messages"], tools=req["tools"], template="mistral-v7")
    assert full == case["full"]["tokens"]
    assert vocab["tekken_240911.json"].detokenize(full, special=True) == case["full"]["text"]
    assert vocab["tiny"].chat_tokenize(req["messages"], tools=req["tools"]) == case["tiny"]["tokens"]


def test_v7_extra_cases(vocab):
    cases = REFS["v7"]["tekken_240911.json relabelled v7"]
    assert len(cases) == 4
    for name, c in cases.items():
        r = c["request"]
        assert vocab["tekken_240911.json"].chat_tokenize(r["messages"], tools=r["tools"], template="mistral-v7") \
            == c["tokens"], name


# ---- Must show 2: V3 for the shipped v3 files --------------------------------------------------------------------
@pytest.mark.parametrize("file", sorted(TEKKEN))
def test_v3_renderings(vocab, file):
    m = vocab[file]
    assert m.chat_template == "mistral-v3"
    cases = REFS["v3"][file]
    assert len(cases) == 13
    for name, c in cases.items():
        r = c["request"]
        ids = m.chat_tokenize(r["messages"], tools=r.get("tools"))
        assert ids == c["tokens"], (file, name)
        assert m.detokenize(ids, special=True) == c["text"], (file, name)


@pytest.mark.parametrize("key,template", [("v3 tekken_240911.json", None),
                                          ("v7 tekken_240911.json relabelled v7", "mistral-v7")])
def test_random_conversations(vocab, key, template):
    # seeded random conversations: mistral-common's ids, or an error where mistral-common refuses the request
    m = vocab["tekken_240911.json"]
    cases = REFS["random"][key]
    assert len(cases) == 120
    for i, c in enumerate(cases):
        r = c["request"]
        if "error" in c:
            with pytest.raises(mistral.MistralError) as e:
                m.chat_tokenize(r["messages"], tools=r.get("tools"), template=template)
            assert e.value.status == mistral.ERR_INVALID_ARGUMENT, (i, c["error"])
        else:
            assert m.chat_tokenize(r["messages"], tools=r.get("tools"), template=template) == c["tokens"], i


def test_v3_text_only_takes_struct_path(vocab):
    # plain text conversations go through mistral_chat_tokenize (the struct form): same V3 result
    c = REFS["v3"]["tekken_240911.json"]["multi_turn"]
    assert vocab["tekken_240911.json"].chat_tokenize(c["request"]["messages"]) == c["tokens"]


# ---- Must show 6: Unicode 17 code points as mistral-common -------------------------------------------------------
@pytest.mark.parametrize("file", sorted(TEKKEN))
def test_unicode17_code_points(vocab, file):
    cases = REFS["unicode"][file]
    assert len(cases) == 13
    for c in cases:
        assert vocab[file].tokenize(c["text"]) == c["ids"], ascii(c["text"])


@pytest.mark.parametrize("name", ["tiny-s-f32.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"])
def test_gguf_code_points_as_llamacpp(name):
    # GGUF BPE classes by llama.cpp's tables (Unicode 15.1): 16.0 and 17.0 additions are unassigned there
    path = os.path.join(FIXTURES, "tiny-s", "gguf", name) if name.startswith("tiny") else MODEL_PATH
    m = mistral.Model(path, vocab_only=True)
    cases = fixture("unicode-llamacpp/references.json")["models"][name]
    assert len(cases) == 21
    for c in cases:
        assert m.tokenize(c["text"]) == c["ids"], ascii(c["text"])


# ---- request errors ---------------------------------------------------------------------------------------------
def test_bad_requests(vocab):
    m = vocab["tiny"]
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "abc", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    bad = [
        [{"role": "user", "content": "q"}, call, {"role": "tool", "tool_call_id": "abc", "content": "1"}],
        [{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "abcdefghi", "content": "1"}],
        [{"role": "user", "content": 5}],
        [{"role": "user", "content": [{"type": "audio"}]}],
    ]
    for msgs in bad:
        with pytest.raises(mistral.MistralError) as e:
            m.chat_tokenize(msgs, tools=[])
        assert e.value.status == mistral.ERR_INVALID_ARGUMENT, msgs
    with pytest.raises(mistral.MistralError) as e:
        m.chat_tokenize([{"role": "user", "content": "q"}], tools=[{"type": "function", "function": {"name": "a b"}}])
    assert e.value.status == mistral.ERR_INVALID_ARGUMENT
    with pytest.raises(mistral.MistralError) as e:
        m.chat_tokenize([{"role": "user", "content": float("nan")}], tools=[])
    assert e.value.status == mistral.ERR_INVALID_ARGUMENT
    with pytest.raises(mistral.MistralError) as e:
        m.chat_tokenize([{"role": "user", "content": "q"}], tools=TOOLS_V7["tools_first_turn"]["request"]["tools"],
                        template="chatml")
    assert e.value.status == mistral.ERR_UNSUPPORTED
    # the C entry point with raw bytes: invalid UTF-8, NULL with a length, truncated JSON
    n = mistral.ctypes.c_size_t(0)
    for data, length in [(b'{"messages": [{"role": "user", "content": "\xff"}]}', None), (None, 5), (b'{"messages": [', None),
                         (b"{}", 2**64 - 2)]:
        st = mistral._lib.mistral_chat_tokenize_json(m.handle, None, data, len(data) if length is None else length,
                                                    None, 0, 1, None, 0, mistral.ctypes.byref(n))
        assert st == mistral.ERR_INVALID_ARGUMENT
    st = mistral._lib.mistral_chat_tokenize_json(m.handle, None, b"{}", 2, None, 2**64 - 1, 1, None, 0,
                                                mistral.ctypes.byref(n))  # n_images = (size_t)-1
    assert st == mistral.ERR_INVALID_ARGUMENT


# ---- Must show 3: parsing the model's calls ---------------------------------------------------------------------
ID = re.compile(r"^[A-Za-z0-9]{9}$")
OUTPUTS = {
    "one": ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "a1b2c3d4e"}]',
            [("get_weather", '{"city": "Paris"}', "a1b2c3d4e")]),
    "parallel": ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "AAAAAAAA1"}, '
                 '{"name": "get_time", "arguments": {"tz":"Europe/Rome"}, "id": "BBBBBBBB2"}]',
                 [("get_weather", '{"city": "Paris"}', "AAAAAAAA1"), ("get_time", '{"tz": "Europe/Rome"}', "BBBBBBBB2")]),
    "nested_non_ascii": ('Sure.[TOOL_CALLS][{"name": "book", "arguments": {"city": "Zürich", "rooms": [{"beds": 2, '
                         '"note": "vue sur le lac ❄"}], "ok": true, "price": 1.50}, "id": "Zz9Yy8Xx7"}]',
                         [("book", '{"city": "Zürich", "rooms": [{"beds": 2, "note": "vue sur le lac ❄"}], "ok": true, '
                           '"price": 1.5}', "Zz9Yy8Xx7")]),
    "missing_id": ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}}]',
                   [("get_weather", '{"city": "Oslo"}', None)]),
    "two_blocks": ('[TOOL_CALLS][{"name": "a", "arguments": {}}][TOOL_CALLS][{"name": "b", "arguments": "{\\"x\\": 1}"}]',
                   [("a", "{}", None), ("b", '{"x": 1}', None)]),
}


def check_calls(got, want):
    assert len(got) == len(want)
    for call, (name, args, id_) in zip(got, want):
        assert call["type"] == "function"
        assert call["function"]["name"] == name
        assert call["function"]["arguments"] == args
        assert json.loads(call["function"]["arguments"]) == json.loads(args)
        assert ID.match(call["id"]) and (id_ is None or call["id"] == id_)


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_parse_given_outputs(vocab, name):
    text, want = OUTPUTS[name]
    r = mistral.parse_tool_calls(text)
    check_calls(r["tool_calls"], want)
    assert r["content"] == text[:text.index("[TOOL_CALLS]")]
    for m in (vocab["tiny"], vocab["tekken_240911.json"]):
        ids = m.tokenize(text, special=True)  # [TOOL_CALLS] as the control token, the rest as text
        check_calls(m.parse_tool_calls(ids)["tool_calls"], want)


def test_parse_missing_ids_are_fresh():
    a = mistral.parse_tool_calls(OUTPUTS["missing_id"][0])["tool_calls"][0]["id"]
    b = mistral.parse_tool_calls(OUTPUTS["missing_id"][0])["tool_calls"][0]["id"]
    assert ID.match(a) and ID.match(b) and a != b


@pytest.mark.parametrize("text", ['[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}', '[TOOL_CALLS]not json',
                                  '[TOOL_CALLS][{"arguments": {}}]', '[TOOL_CALLS]42', '[TOOL_CALLS]'])
def test_parse_malformed_is_reported(vocab, text):
    with pytest.raises(mistral.MistralError) as e:
        mistral.parse_tool_calls(text)
    assert e.value.status == mistral.ERR_FORMAT
    with pytest.raises(mistral.MistralError) as e:
        vocab["tiny"].parse_tool_calls(vocab["tiny"].tokenize(text, special=True))
    assert e.value.status == mistral.ERR_FORMAT


def test_parse_without_calls(vocab):
    r = mistral.parse_tool_calls("Just text, no calls.")
    assert r == {"content": "Just text, no calls.", "tool_calls": None}
    # text that merely spells [TOOL_CALLS] is no call when parsing tokens
    m = vocab["tiny"]
    assert m.parse_tool_calls(m.tokenize('[TOOL_CALLS][{"name": "f"}]'))["tool_calls"] is None


def test_session_chat_with_tools_reports_what_it_generated():
    # tiny-s has random weights: whatever it writes, chat's tool_calls must be what the parser makes of its output
    model = mistral.Model(os.path.join(FIXTURES, "tiny-s", "native"), tokenizer_path=TINY_TEKKEN)
    req = TOOLS_V7["tool_call_and_result"]["request"]
    with mistral.Session(model, n_ctx=512, threads=2) as s:
        pieces = []
        reply = s.chat(req["messages"], tools=req["tools"], max_tokens=12, temperature=0, special_out=True,
                       on_token=lambda piece, tok: pieces.append(piece) and False)
        assert isinstance(reply, mistral.ChatReply) and isinstance(reply, str)
        assert s.n_past >= len(model.chat_tokenize(req["messages"], tools=req["tools"]))
        try:
            parsed = mistral.parse_tool_calls("".join(pieces))
        except mistral.MistralError as e:
            assert e.status == mistral.ERR_FORMAT and reply.tool_call_error
        else:
            assert reply.tool_call_error is None
            got = [(c["function"]["name"], c["function"]["arguments"]) for c in reply.tool_calls or []]
            assert got == [(c["function"]["name"], c["function"]["arguments"]) for c in parsed["tool_calls"] or []]
        assert reply.message["role"] == "assistant"


# ---- the same through the C client -------------------------------------------------------------------------------
def run_client(*args, stdin=None):
    assert os.path.exists(CLIENT), f"missing {CLIENT}: run Tests/build.sh"
    return subprocess.run([CLIENT, *args], input=stdin, capture_output=True, text=True, timeout=300)


def test_c_client_renders_tool_cases(tmp_path):
    # one case per two lines: the request JSON, then the expected ids
    lines = []
    for case in TOOLS_V7.values():
        lines += [json.dumps(case["request"], ensure_ascii=False), " ".join(map(str, case["tiny"]["tokens"]))]
    r = run_client("render", TINY_TEKKEN, "mistral-v7", stdin="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 cases equal" in r.stdout
    lines = []
    for case in TOOLS_V7.values():
        lines += [json.dumps(case["request"], ensure_ascii=False), " ".join(map(str, case["full"]["tokens"]))]
    r = run_client("render", TEKKEN["tekken_240911.json"], "mistral-v7", stdin="\n".join(lines) + "\n")
    assert r.returncode == 0 and "5 cases equal" in r.stdout, r.stdout + r.stderr
    for file in TEKKEN:
        lines = []
        for c in REFS["v3"][file].values():
            lines += [json.dumps(c["request"], ensure_ascii=False), " ".join(map(str, c["tokens"]))]
        r = run_client("render", TEKKEN[file], "-", stdin="\n".join(lines) + "\n")
        assert r.returncode == 0 and "13 cases equal" in r.stdout, r.stdout + r.stderr


def test_c_client_parses_tool_calls():
    r = run_client("parse", TINY_TEKKEN)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "parse checks passed" in r.stdout


def test_json_request_with_images_matches_mistral_common():
    # images through the JSON form: "images" lists and {"type": "image", "image": ...} parts become image handles
    hf = mistral.Model(os.path.join(FIXTURES, "tiny-s", "hf"), tokenizer_path=TINY_TEKKEN)
    img1 = os.path.join(FIXTURES, "tiny-s", "reference", "img1_84x56.png")
    for case in ["img1", "img1_img2"]:
        meta = fixture(f"tiny-s/reference/{case}/meta.json")
        files = [os.path.join(FIXTURES, "tiny-s", "reference", i["file"]) for i in meta["images"]]
        parts = [{"type": "image", "image": f} for f in files] + [{"type": "text", "text": meta["prompt_text"]}]
        assert hf.chat_tokenize([{"role": "user", "content": parts}], tools=[]) == meta["prompt_ids"], case
        assert hf.chat_tokenize([{"role": "user", "content": meta["prompt_text"], "images": files}], tools=[]) \
            == meta["prompt_ids"], case
    ref = fixture("tiny-s/tokenizer/chat_v7.json")
    req = ref["request"]
    messages = [{"role": "system", "content": req["system"]}, {"role": "user", "content": req["user1"]},
                {"role": "assistant", "content": req["assistant"]},
                {"role": "user", "content": [{"type": "text", "text": "Describe this picture:"},
                                             {"type": "image", "image": img1}]}]  # a single last image goes first
    assert hf.chat_tokenize(messages, tools=[]) == ref["renderings"]["with_image"]["tokens"]
    with pytest.raises(mistral.MistralError) as e:  # more image parts than images
        n = mistral.ctypes.c_size_t(0)
        data = b'{"messages": [{"role": "user", "content": [{"type": "image"}]}]}'
        mistral._check(mistral._lib.mistral_chat_tokenize_json(hf.handle, None, data, len(data), None, 0, 1, None, 0,
                                                               mistral.ctypes.byref(n)), "x")
    assert e.value.status == mistral.ERR_INVALID_ARGUMENT
