"""The OpenAI-compatible server (python3 -m mistral.server) on 127.0.0.1, driven by the real `openai` client: chat
(plain and streamed), stop strings, tool calls forced by a grammar and their round trip, response_format, logprobs,
completions, errors in OpenAI's shape, the API key, the prompt cache, concurrency, and cancellation when the client
goes away. Needs fastapi, uvicorn, openai and httpx (pip install fastapi uvicorn openai httpx)."""
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import MODEL_PATH, ROOT

try:
    import httpx
    import openai
    import fastapi  # noqa: F401  (the server's own dependencies, checked here so a missing one is named)
    import uvicorn  # noqa: F401
except ImportError as e:  # never skipped: say what to install
    raise ImportError(f"test_server.py needs {e.name}: pip install fastapi uvicorn openai httpx") from None

KEY = "test-key-123"
PARALLEL = 3
N_CTX = 2048
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a time zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(*args):
    """python3 -m mistral.server on a free loopback port with `args`, until /health answers; yields its base URL,
    then stops it and asserts it printed no traceback."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    proc = subprocess.Popen([sys.executable, "-m", "mistral.server", "--port", str(port), "--log-level", "warning",
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.time() < deadline, "the server did not come up"
        time.sleep(0.2)
    yield base
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert "Traceback" not in out, out


@pytest.fixture(scope="module")
def server():
    assert os.path.exists(MODEL_PATH), f"missing {MODEL_PATH}: run `bash examples/download-model.sh` first"
    with running_server("--model", MODEL_PATH, "--api-key", KEY, "--parallel", str(PARALLEL),
                        "--n-ctx", str(N_CTX), "--threads", "1") as base:
        yield base


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=300)


def chat(client, messages=QUESTION, **kw):
    return client.chat.completions.create(model="x", messages=messages, temperature=0, **kw)


def streamed_chat(client, messages=QUESTION, **kw):
    text, finish, roles = [], None, []
    for ch in client.chat.completions.create(model="x", messages=messages, temperature=0, stream=True, **kw):
        assert ch.object == "chat.completion.chunk"
        if not ch.choices:
            continue
        d = ch.choices[0].delta
        roles.append(d.role)
        if d.content:
            text.append(d.content)
        finish = ch.choices[0].finish_reason or finish
    return "".join(text), finish, roles


def test_health_and_models(server, client):
    assert httpx.get(server + "/health").json()["status"] == "ok"
    ids = [m.id for m in client.models.list().data]
    assert ids == [os.path.basename(MODEL_PATH)]


def test_chat_plain_and_streamed_agree(client):
    r = chat(client, max_tokens=32)
    text = r.choices[0].message.content
    assert "Paris" in text
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.role == "assistant"
    assert r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 32
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    s, finish, roles = streamed_chat(client, max_tokens=32)
    assert s == text and finish == "stop" and roles[0] == "assistant"


def test_max_tokens_gives_length(client):
    r = chat(client, max_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


def test_stop_strings(client):
    full = chat(client, max_tokens=32).choices[0].message.content
    assert " is " in full
    r = chat(client, max_tokens=32, stop=[" is "])
    assert r.choices[0].message.content == full[: full.index(" is ")]
    assert r.choices[0].finish_reason == "stop"
    s, finish, _ = streamed_chat(client, max_tokens=32, stop=" is ")
    assert s == full[: full.index(" is ")] and finish == "stop"


def test_forced_tool_call_round_trip(client):
    messages = [{"role": "user", "content": "What's the weather like in Paris right now?"}]
    r = chat(client, messages, tools=[WEATHER, TIME], max_tokens=64,
             tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert len(calls) == 1 and calls[0].type == "function" and calls[0].function.name == "get_weather"
    args = json.loads(calls[0].function.arguments)
    assert isinstance(args["city"], str)
    assert len(calls[0].id) == 9 and calls[0].id.isalnum()
    # any tool, but a call it must be
    r2 = chat(client, messages, tools=[WEATHER, TIME], tool_choice="required", max_tokens=64)
    assert r2.choices[0].message.tool_calls[0].function.name in ("get_weather", "get_time")
    # the result goes back; the model answers in text
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": calls[0].id, "name": "get_weather",
                  "content": json.dumps({"city": args["city"], "temperature_c": 21, "sky": "sunny"})}]
    answer = chat(client, messages, tools=[WEATHER, TIME], tool_choice="none", max_tokens=48)
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content.strip()
    assert answer.usage.prompt_tokens > r.usage.prompt_tokens  # the call and its result are in the prompt


def test_streamed_tool_call(client):
    stream = client.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "Weather in Rome?"}], temperature=0, stream=True,
        tools=[WEATHER], tool_choice="required", max_tokens=64)
    calls, finish = [], None
    for ch in stream:
        if ch.choices and ch.choices[0].delta.tool_calls:
            calls += ch.choices[0].delta.tool_calls
        if ch.choices and ch.choices[0].finish_reason:
            finish = ch.choices[0].finish_reason
    assert finish == "tool_calls" and calls[0].function.name == "get_weather"
    assert "city" in json.loads(calls[0].function.arguments)


def test_response_format_json_schema(client):
    import jsonschema
    schema = {"type": "object", "properties": {"country": {"type": "string"}, "capital": {"type": "string"},
                                               "population_millions": {"type": "integer"}},
              "required": ["country", "capital", "population_millions"], "additionalProperties": False}
    r = chat(client, [{"role": "user", "content": "Give me facts about France as JSON."}], max_tokens=96,
             response_format={"type": "json_schema", "json_schema": {"name": "facts", "schema": schema}})
    data = json.loads(r.choices[0].message.content)
    jsonschema.validate(data, schema)
    r = chat(client, [{"role": "user", "content": "A JSON object about Paris."}], max_tokens=64,
             response_format={"type": "json_object"})
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_logprobs(client):
    r = chat(client, max_tokens=8, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(e.token for e in content) == r.choices[0].message.content
    for e in content:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        assert e.top_logprobs[0].logprob >= e.logprob - 1e-4  # greedy: the best alternative is the one taken


def test_completions_plain_and_streamed(client):
    prompt = "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n"
    r = client.completions.create(model="x", prompt=prompt, temperature=0, max_tokens=24)
    text = r.choices[0].text
    assert text and r.usage.completion_tokens > 0
    parts = [c.choices[0].text for c in client.completions.create(model="x", prompt=prompt, temperature=0,
                                                                   max_tokens=24, stream=True) if c.choices]
    assert "".join(parts) == text


def test_bad_requests_are_openai_400s(server, client):
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, [{"role": "wizard", "content": "hi"}])
    assert e.value.status_code == 400 and "role" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="x", messages=QUESTION, temperature=7)
    with pytest.raises(openai.BadRequestError):
        chat(client, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(openai.BadRequestError):  # SmolLM2's template has no image tokens
        chat(client, [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    with pytest.raises(openai.BadRequestError):  # refused by the binding's own checks, on the generating thread
        chat(client, stop=[f"s{i}" for i in range(65)], max_tokens=2)
    with pytest.raises(openai.BadRequestError) as e:  # longer than the context
        chat(client, [{"role": "user", "content": "word " * (N_CTX + 100)}])
    assert e.value.code == "context_length_exceeded"
    h = {"Authorization": f"Bearer {KEY}"}
    for body in ({}, {"messages": "x"}, {"messages": []}, {"messages": QUESTION, "max_tokens": -1}, "not json"):
        r = httpx.post(server + "/v1/chat/completions", headers=h,
                       **({"content": body} if isinstance(body, str) else {"json": body}))
        assert r.status_code == 400, (body, r.status_code, r.text)
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
        assert "Traceback" not in r.text
    assert httpx.get(server + "/v1/nothing-here", headers=h).json()["error"]["message"]


def test_api_key_enforced(server):
    c = openai.OpenAI(base_url=server + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        c.models.list()
    assert e.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="x", messages=QUESTION, max_tokens=2)
    r = httpx.get(server + "/v1/models")  # no key at all
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server + "/health").status_code == 200  # the probe needs no key


def test_prompt_cache_reuses_a_shared_prefix(client):
    system = {"role": "system", "content": "You are a terse assistant for a travel agency. " * 12}
    first = chat(client, [system, {"role": "user", "content": "Best month to visit Lisbon?"}], max_tokens=4)
    second = chat(client, [system, {"role": "user", "content": "Best month to visit Oslo?"}], max_tokens=4)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 100 and cached < second.usage.prompt_tokens
    assert first.usage.prompt_tokens_details.cached_tokens < cached


def test_concurrent_requests_match_serial(client):
    questions = ["What is the capital of France?", "What is 2 + 2?", "Name a large ocean.",
                 "What colour is the sky?", "Who wrote Hamlet?", "What is the boiling point of water?"]
    serial = [chat(client, [{"role": "user", "content": q}], max_tokens=24).choices[0].message.content
              for q in questions]
    out = [None] * len(questions)

    def run(i):
        out[i] = chat(client, [{"role": "user", "content": questions[i]}], max_tokens=24).choices[0].message.content

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == serial


def test_disconnect_cancels_generation(server, client):
    before = httpx.get(server + "/stats").json()
    stream = client.chat.completions.create(model="x", messages=[{"role": "user", "content": "Tell a long story."}],
                                            temperature=0.8, max_tokens=1500, stream=True,
                                            extra_body={"ignore_eos": True})
    got = 0
    for ch in stream:
        if ch.choices and ch.choices[0].delta.content:
            got += 1
            if got >= 5:
                break
    stream.close()  # the client goes away mid-stream
    deadline = time.time() + 60
    while True:
        stats = httpx.get(server + "/stats").json()
        if stats["cancelled"] > before["cancelled"]:
            break
        assert time.time() < deadline, stats
        time.sleep(0.1)
    assert 5 <= stats["last_cancelled_generated_tokens"] < 300  # far below max_tokens: generation stopped
    # the session went back to the pool: the server still answers, with every slot idle again
    assert "Paris" in chat(client, max_tokens=16).choices[0].message.content
    assert httpx.get(server + "/health").json()["slots_busy"] == 0


def test_disconnect_cancels_a_plain_request(server):
    before = httpx.get(server + "/stats").json()["cancelled"]
    body = {"model": "x", "messages": [{"role": "user", "content": "Tell a long story."}], "max_tokens": 1500,
            "ignore_eos": True}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up before the answer
        httpx.post(server + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"},
                   timeout=httpx.Timeout(10, read=1.0))
    deadline = time.time() + 60
    while httpx.get(server + "/stats").json()["cancelled"] == before:
        assert time.time() < deadline
        time.sleep(0.1)
    assert httpx.get(server + "/stats").json()["last_cancelled_generated_tokens"] < 1000


# ---- a Mistral V7 model (tiny-s: random weights, its own [TOOL_CALLS] format, a vision encoder) ----------------
TINY = os.path.join(ROOT, "Tests", "Fixtures", "tiny-s", "gguf")


@pytest.fixture(scope="module")
def tiny_client():
    with running_server("--model", os.path.join(TINY, "tiny-s-f32.gguf"),
                        "--mmproj", os.path.join(TINY, "mmproj-tiny-s-f32.gguf"),
                        "--image-dir", os.path.join(ROOT, "Tests", "Fixtures", "tiny-s"),
                        "--parallel", "2", "--n-ctx", "1024", "--threads", "1") as base:
        yield openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=300)


def test_v7_forced_tool_call_round_trip(tiny_client):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]}}, "required": ["city"]}}}
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    r = chat(tiny_client, messages, tools=[tool], tool_choice="required", max_tokens=64)
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments)["city"] in ("Paris", "Rome")
    messages += [r.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": calls[0].id, "name": "get_weather", "content": '{"temp": 21}'}]
    answer = chat(tiny_client, messages, tools=[tool], tool_choice="none", max_tokens=8)
    assert answer.usage.prompt_tokens > r.usage.prompt_tokens  # the library rendered the call and its result
    assert answer.choices[0].message.tool_calls is None and answer.choices[0].finish_reason in ("stop", "length")


def test_v7_image_as_data_url_and_path(tiny_client):
    png = os.path.join(ROOT, "Tests", "Fixtures", "tiny-s", "reference", "img1_84x56.png")
    with open(png, "rb") as f:
        url = "data:image/png;base64," + base64.b64encode(f.read()).decode()
    text = {"type": "text", "text": "What is in the picture?"}
    plain = chat(tiny_client, [{"role": "user", "content": [text]}], max_tokens=4)
    by_url = chat(tiny_client, [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, text]}],
                  max_tokens=4)
    by_path = chat(tiny_client, [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": png}},
                                                                text]}], max_tokens=4)
    assert by_url.usage.prompt_tokens > plain.usage.prompt_tokens  # the image's [IMG] grid is in the prompt
    assert by_path.usage.prompt_tokens == by_url.usage.prompt_tokens
    assert by_path.choices[0].message.content == by_url.choices[0].message.content
    with pytest.raises(openai.BadRequestError):
        chat(tiny_client, [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/no/such.png"}}]}])
    # a path outside --image-dir is refused, even through ..
    outside = os.path.join(ROOT, "Tests", "Fixtures", "tiny-s", "..", "..", "..", "README.md")
    with pytest.raises(openai.BadRequestError, match="outside"):
        chat(tiny_client, [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": outside}}]}])
