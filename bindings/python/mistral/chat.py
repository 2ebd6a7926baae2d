"""Chat messages and tool calls as the C API takes and returns them."""
from __future__ import annotations

import ctypes
import json
from typing import Any, Dict, List, Sequence, Tuple, Union

from ._args import _cstr_arg, _text_arg
from ._capi import ERR_INVALID_ARGUMENT, MistralError, _ChatMessage, _check, _lib
from .image import Image

def _chat_array(messages: Sequence[Dict[str, Any]]) -> Tuple[Any, List[Any]]:
    """ctypes messages plus everything that must stay alive while the library reads them."""
    keep = []
    structs = []
    for m in messages:
        if not isinstance(m, dict):
            raise TypeError(f"a chat message must be a dict, got {type(m).__name__}")
        role, content = _cstr_arg("role", m["role"]), _cstr_arg("content", m["content"])
        images = [Image.of(x) for x in m.get("images", [])]
        arr = (ctypes.c_void_p * max(len(images), 1))(*[i.handle.value for i in images])
        keep += [role, content, images, arr]
        structs.append(_ChatMessage(role, content, ctypes.cast(arr, ctypes.c_void_p) if images else None, len(images)))
    return (_ChatMessage * max(len(structs), 1))(*structs), keep


_TOOL_KEYS = ("tool_calls", "tool_call_id")


def _needs_json(messages, tools) -> bool:
    """Tools, tool calls, tool results or content parts need the JSON request form; plain text chats keep the
    struct form."""
    if tools is not None:
        return True
    return any(isinstance(m, dict) and (m.get("role") == "tool" or any(k in m for k in _TOOL_KEYS)
                                        or isinstance(m.get("content"), list)) for m in messages)


def _chat_request(messages: Sequence[dict], tools):
    """The OpenAI-shaped JSON request (UTF-8) and its image handles (from "images" lists and image parts)."""
    if isinstance(messages, (str, bytes, dict)) or not hasattr(messages, "__iter__"):
        raise TypeError("messages must be a list of dicts")
    images: list = []
    out = []
    for m in messages:
        if not isinstance(m, dict):
            raise TypeError(f"a chat message must be a dict, got {type(m).__name__}")
        m = dict(m)
        extra = [Image.of(x) for x in m.pop("images", None) or []]
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image" and "image" in part:
                    images.append(Image.of(part["image"]))
                    parts.append({"type": "image"})
                else:
                    parts.append(part)
            content = parts
        if extra:
            images.extend(extra)
            text = [] if content in (None, "") else ([{"type": "text", "text": content}] if isinstance(content, str)
                                                      else content)
            content = [{"type": "image"} for _ in extra] + text
        if "content" in m or extra:
            m["content"] = content
        out.append(m)
    request = {"messages": out}
    if tools is not None:
        request["tools"] = list(tools)
    try:
        data = json.dumps(request, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise MistralError(ERR_INVALID_ARGUMENT, f"the chat request cannot be written as JSON: {e}") from None
    arr = (ctypes.c_void_p * max(len(images), 1))(*[i.handle.value for i in images])
    return data, arr, images


def _take_tool_calls(status: int, handle: ctypes.c_void_p, call: str) -> dict:
    """{"content": str, "tool_calls": [OpenAI calls] or None} from a parse handle (freed here)."""
    _check(status, call)
    try:
        calls = json.loads(_lib.mistral_tool_calls_json(handle).decode("utf-8"))
        content = _lib.mistral_tool_calls_content(handle).decode("utf-8", "replace")
    finally:
        _lib.mistral_tool_calls_free(handle)
    return {"content": content, "tool_calls": calls or None}


def parse_tool_calls(text: Union[str, bytes]) -> dict:
    """Parses text in which "[TOOL_CALLS]" starts the model's calls (e.g. generated with special_out=True):
    {"content": text before it, "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}] or
    None}. Ids the model did not write are generated (9 alphanumerics). Malformed call JSON raises
    MistralError(ERR_FORMAT)."""
    data = _text_arg("text", text)
    handle = ctypes.c_void_p()
    return _take_tool_calls(_lib.mistral_tool_calls_parse_text(data, len(data), ctypes.byref(handle)), handle,
                            "mistral_tool_calls_parse_text")
