"""OpenAI request pieces turned into what the binding takes: messages (image_url parts, tool calls and results),
tools for templates without a tool format (ChatML: described in the system prompt, calls written as
<tool_call>{json}</tool_call>, as Hermes-style models do), the JSON schema that forces a tool call, and tool calls
parsed back out of the text. Problems raise BadRequest (an OpenAI 400)."""
from __future__ import annotations

import base64
import json
import os
import random
import re
import string
from typing import Any, Dict, List, Optional, Tuple

TOOL_TEMPLATES = ("mistral-v7", "mistral-v3")  # the library renders and parses these templates' tool calls
_ID_CHARS = string.ascii_letters + string.digits


class BadRequest(Exception):
    """An invalid request: answered with HTTP 400 and OpenAI's error object."""

    def __init__(self, message: str, param: Optional[str] = None, code: Optional[str] = None):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def new_call_id() -> str:
    """mistral-common's tool call id form: 9 alphanumerics."""
    return "".join(random.choice(_ID_CHARS) for _ in range(9))


def image_source(part: Dict[str, Any], where: str, image_dir: Optional[str] = None) -> Any:
    """What mistral.Image.of takes for an image_url part: bytes of a data: URL, or a file path (file:// or plain)
    inside `image_dir` — None refuses paths, so a client cannot make the server open its files."""
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str) or not url:
        raise BadRequest(f"{where}: image_url needs a url", param=where)
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        if not sep or ";base64" not in head:
            raise BadRequest(f"{where}: only base64 data: URLs are supported", param=where)
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            raise BadRequest(f"{where}: the data: URL is not valid base64", param=where) from None
    if url.startswith(("http://", "https://")):
        raise BadRequest(f"{where}: remote image URLs are not fetched; send a data: URL", param=where)
    path = url[len("file://"):] if url.startswith("file://") else url
    if image_dir is None:
        raise BadRequest(f"{where}: image file paths are not accepted (the server was started without --image-dir); "
                         "send a data: URL", param=where)
    real, root = os.path.realpath(path), os.path.realpath(image_dir)
    if os.path.commonpath([real, root]) != root:
        raise BadRequest(f"{where}: {path} is outside the server's --image-dir", param=where)
    if not os.path.isfile(real):
        raise BadRequest(f"{where}: no such image file: {path}", param=where)
    return real


def _content(content: Any, where: str, image_dir: Optional[str]) -> Any:
    """Text, None, or a list of parts with image_url parts turned into the binding's {"type": "image"} parts."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or a list of parts", param=f"{where}.content")
    parts = []
    for k, part in enumerate(content):
        pw = f"{where}.content[{k}]"
        if not isinstance(part, dict):
            raise BadRequest(f"{pw} must be an object", param=pw)
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"{pw}.text must be a string", param=pw)
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            parts.append({"type": "image", "image": image_source(part, pw, image_dir)})
        else:
            raise BadRequest(f"{pw}: unsupported content part type {kind!r}", param=pw)
    return parts


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if any(p["type"] == "image" for p in content):
        raise BadRequest("this model's chat template has no image tokens", param="messages")
    return "".join(p["text"] for p in content)


def _tool_call_dict(call: Any, where: str) -> Dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise BadRequest(f"{where} must be {{id, type: function, function: {{name, arguments}}}}", param=where)
    fn = call["function"]
    if not isinstance(fn.get("name"), str):
        raise BadRequest(f"{where}.function.name must be a string", param=where)
    args = fn.get("arguments", "{}")
    if not isinstance(args, str):
        args = json.dumps(args)
    return {"id": call.get("id") or new_call_id(), "type": "function",
            "function": {"name": fn["name"], "arguments": args}}


def check_tools(tools: Optional[List[Any]]) -> Optional[List[Dict[str, Any]]]:
    """OpenAI's tool list, checked: [{"type": "function", "function": {"name", "description"?, "parameters"?}}]."""
    if tools is None:
        return None
    out = []
    for k, t in enumerate(tools):
        where = f"tools[{k}]"
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(t.get("function"), dict) \
                or not isinstance(t["function"].get("name"), str) or not t["function"]["name"]:
            raise BadRequest(f"{where} must be {{type: function, function: {{name, parameters}}}}", param=where)
        params = t["function"].get("parameters")
        if params is not None and not isinstance(params, dict):
            raise BadRequest(f"{where}.function.parameters must be a JSON schema object", param=where)
        out.append(t)
    return out or None


def convert_messages(messages: List[Any], tools: Optional[List[Dict[str, Any]]], template: Optional[str],
                     image_dir: Optional[str] = None) -> Tuple[List[Dict[str, Any]], Optional[List[Dict[str, Any]]]]:
    """(messages, tools) as Session.chat takes them for this template. Templates without a tool format get the
    tools described in the system prompt, calls as <tool_call> text and results as user turns."""
    native = template in TOOL_TEMPLATES
    out: List[Dict[str, Any]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest(f"{where} must be an object", param=where)
        role = m.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise BadRequest(f"{where}.role must be system, user, assistant or tool, got {role!r}", param=where)
        role = "system" if role == "developer" else role
        content = _content(m.get("content"), where, image_dir)
        calls = [_tool_call_dict(c, f"{where}.tool_calls[{k}]") for k, c in enumerate(m.get("tool_calls") or [])]
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise BadRequest(f"{where}: a tool message needs tool_call_id", param=where)
        if native:
            msg: Dict[str, Any] = {"role": role, "content": content}
            if calls and role == "assistant":
                msg["tool_calls"] = calls
            if role == "tool":
                msg["tool_call_id"] = m["tool_call_id"]
                if isinstance(m.get("name"), str):
                    msg["name"] = m["name"]
            out.append(msg)
            continue
        text = _text_of(content) if isinstance(content, list) and role != "user" else content
        if role == "assistant" and calls:
            written = "\n".join("<tool_call>\n" + json.dumps({"name": c["function"]["name"],
                                                              "arguments": _json_or_text(c["function"]["arguments"])})
                                + "\n</tool_call>" for c in calls)
            text = (_text_of(text) + "\n" if text else "") + written
        if role == "tool":
            role, text = "user", "<tool_response>\n" + _text_of(content) + "\n</tool_response>"
        out.append({"role": role, "content": "" if text is None else text})
    if native or not tools:
        return out, tools if native else None
    prompt = tool_system_prompt(tools)
    if out and out[0]["role"] == "system":
        out[0] = {"role": "system", "content": _text_of(out[0]["content"]) + "\n\n" + prompt}
    else:
        out.insert(0, {"role": "system", "content": prompt})
    return out, None


def _json_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def tool_system_prompt(tools: List[Dict[str, Any]]) -> str:
    """The tool description a template without a tool format gets in its system prompt (Hermes style)."""
    listed = "\n".join(json.dumps(t["function"], ensure_ascii=False) for t in tools)
    return ("You may call functions to answer. The functions are listed in <tools></tools>:\n<tools>\n" + listed +
            "\n</tools>\nTo call one, write a JSON object with its name and arguments inside <tool_call></tool_call>:"
            "\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>")


def forced_call_schema(tools: List[Dict[str, Any]], name: Optional[str]) -> Dict[str, Any]:
    """A JSON schema whose only valid texts are one call {"name", "arguments"} of `name` (or of any tool)."""
    def one(t: Dict[str, Any]) -> Dict[str, Any]:
        params = t["function"].get("parameters") or {"type": "object"}
        return {"type": "object", "properties": {"name": {"const": t["function"]["name"]}, "arguments": params},
                "required": ["name", "arguments"], "additionalProperties": False}
    chosen = [t for t in tools if name is None or t["function"]["name"] == name]
    return one(chosen[0]) if len(chosen) == 1 else {"anyOf": [one(t) for t in chosen]}


def tool_choice_of(choice: Any, tools: Optional[List[Dict[str, Any]]]) -> Tuple[str, Optional[str]]:
    """("none" | "auto" | "required", the named function or None)."""
    if choice is None:
        return ("auto" if tools else "none"), None
    if choice in ("none", "auto", "required"):
        if choice == "required" and not tools:
            raise BadRequest("tool_choice 'required' needs tools", param="tool_choice")
        return choice, None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict) \
            and isinstance(choice["function"].get("name"), str):
        name = choice["function"]["name"]
        if not tools or name not in [t["function"]["name"] for t in tools]:
            raise BadRequest(f"tool_choice names {name!r}, which is not in tools", param="tool_choice")
        return "required", name
    raise BadRequest("tool_choice must be none, auto, required or {type: function, function: {name}}",
                     param="tool_choice")


def forced_call(text: str) -> List[Dict[str, Any]]:
    """The tool call written under forced_call_schema (the whole text is one JSON object)."""
    obj = json.loads(text)
    return [{"id": new_call_id(), "type": "function",
             "function": {"name": obj["name"], "arguments": json.dumps(obj["arguments"], ensure_ascii=False)}}]


_TAGGED = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


def tagged_calls(text: str) -> Tuple[str, Optional[List[Dict[str, Any]]]]:
    """(content before the first call, the <tool_call> calls or None) of a template without a tool format."""
    calls = []
    for m in _TAGGED.finditer(text):
        try:
            obj = json.loads(m.group(1))
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            calls.append({"id": new_call_id(), "type": "function",
                          "function": {"name": obj["name"],
                                       "arguments": json.dumps(obj.get("arguments", {}), ensure_ascii=False)}})
    if not calls:
        return text, None
    return text[: text.index("<tool_call>")].strip(), calls
