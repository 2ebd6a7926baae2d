"""JSON schemas as the library's GBNF grammars (the json_schema= of generate)."""
from __future__ import annotations

import ctypes
import json
from typing import Union

from ._args import _cstr_arg
from ._capi import ERR_BUFFER_TOO_SMALL, _check, _lib

def _schema_text(schema) -> bytes:
    """A JSON schema given as a dict (serialised here) or as JSON text."""
    if isinstance(schema, dict):
        return _cstr_arg("json_schema", json.dumps(schema))
    if isinstance(schema, (str, bytes)):
        return _cstr_arg("json_schema", schema)
    raise TypeError(f"json_schema must be a dict or JSON text, got {type(schema).__name__}")


def json_schema_to_grammar(schema: Union[str, dict]) -> str:
    """The GBNF grammar the library makes of a JSON schema (a dict or JSON text), as `json_schema=` uses it."""
    text = _schema_text(schema)
    n = ctypes.c_size_t(0)
    status = _lib.mistral_json_schema_to_grammar(text, None, 0, ctypes.byref(n))
    if status != ERR_BUFFER_TOO_SMALL:
        _check(status, "mistral_json_schema_to_grammar")
    buf = ctypes.create_string_buffer(n.value + 1)
    _check(_lib.mistral_json_schema_to_grammar(text, buf, n.value + 1, ctypes.byref(n)), "mistral_json_schema_to_grammar")
    return buf.raw[: n.value].decode("utf-8")
