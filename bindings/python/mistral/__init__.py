"""ctypes bindings for libmistral (no compile step).

    import mistral
    model = mistral.Model("SmolLM2-135M-Instruct.Q4_1.gguf")
    session = mistral.Session(model, n_ctx=2048)
    print(session.generate("<|im_start|>user\\nHi!<|im_end|>\\n<|im_start|>assistant\\n", temperature=0))

The shared library is looked for in this order, and the first that loads is used:
  1. $MISTRAL_LIBRARY: a path, or a name for the loader such as "libmistral.so.0" (the system's copy);
  2. the libmistral.so bundled next to this file (the wheel built from bindings/python carries one);
  3. a source checkout's .build/release (or .build/debug), when this file is the checkout's bindings/python;
  4. libmistral.so.0 on the normal loader path (the libmistral0 Debian package), then find_library("mistral").
`library_path` says which one was loaded.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import math
import queue
import signal
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

__all__ = ["Model", "Session", "Image", "MistralError", "ChatReply", "Completion", "Piece", "parse_tool_calls",
           "json_schema_to_grammar", "MemoryEstimate", "estimate", "set_log_callback", "version", "library_path"]

# ---- status codes (mistral.h) -------------------------------------------------------------------------------
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_IO = 2
ERR_FORMAT = 3
ERR_UNSUPPORTED = 4
ERR_OUT_OF_MEMORY = 5
ERR_CONTEXT_FULL = 6
ERR_BUFFER_TOO_SMALL = 7
ERR_CANCELLED = 8
ERR_INTERNAL = 9

TOKENIZE_ADD_BOS = 1
TOKENIZE_PARSE_SPECIAL = 2
DETOKENIZE_SPECIAL = 1
GENERATE_IGNORE_EOS = 1
GENERATE_SPECIAL = 2

STOP_REASONS = {0: "none", 1: "eog", 2: "max_tokens", 3: "stop_string", 4: "callback", 5: "context_full"}

LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG = 0, 1, 2, 3


class MistralError(Exception):
    """A libmistral call failed. `status` is the MISTRAL_ERR_* code, `message` the library's explanation."""

    status: int
    message: str
    call: str
    text: str  # set on ERR_CONTEXT_FULL from generate(): the text delivered before the context filled

    def __init__(self, status: int, message: str, call: str = ""):
        self.status = status
        self.message = message
        self.call = call
        name = _lib.mistral_status_string(status).decode() if _lib else str(status)
        super().__init__(f"{call + ': ' if call else ''}{name}: {message}")


# ---- structs (must match mistral.h) ----------------------------------------------------------------------------
_PROGRESS_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_float, ctypes.c_void_p)


class _ModelParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("vocab_only", ctypes.c_int32), ("weight_type", ctypes.c_int32),
                ("tokenizer_path", ctypes.c_char_p), ("mmproj_path", ctypes.c_char_p),
                ("progress_callback", _PROGRESS_CALLBACK), ("progress_user_data", ctypes.c_void_p),
                ("n_threads", ctypes.c_int32), ("max_batch_sessions", ctypes.c_int32)]  # (0.4) batching block below


class _MemoryEstimate(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("weights_bytes", ctypes.c_uint64),
                ("kv_bytes_per_position", ctypes.c_uint64), ("n_ctx", ctypes.c_uint64), ("kv_bytes", ctypes.c_uint64),
                ("scratch_bytes", ctypes.c_uint64), ("other_bytes", ctypes.c_uint64), ("total_bytes", ctypes.c_uint64)]


class _ChatMessage(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p), ("images", ctypes.c_void_p),
                ("n_images", ctypes.c_size_t)]


WEIGHT_TYPES = {None: 0, "as_stored": 0, "q8_0": 8, "q4_0": 2}
CHAT_ADD_GENERATION_PROMPT = 1
GENERATE_REUSE_PREFIX = 4


class _SessionParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("n_ctx", ctypes.c_uint32), ("n_threads", ctypes.c_int32),
                ("seed", ctypes.c_uint64), ("n_batch", ctypes.c_uint32), ("kv_type", ctypes.c_int32)]


class _GenerateParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("max_tokens", ctypes.c_int32), ("temperature", ctypes.c_float),
                ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float), ("min_p", ctypes.c_float),
                ("repeat_penalty", ctypes.c_float), ("repeat_last_n", ctypes.c_int32), ("seed", ctypes.c_uint64),
                ("stop", ctypes.POINTER(ctypes.c_char_p)), ("n_stop", ctypes.c_size_t), ("flags", ctypes.c_uint32),
                # since 0.3
                ("grammar", ctypes.c_char_p), ("json_schema", ctypes.c_char_p),
                ("logit_bias_tokens", ctypes.POINTER(ctypes.c_int32)),
                ("logit_bias_values", ctypes.POINTER(ctypes.c_float)), ("n_logit_bias", ctypes.c_size_t),
                ("n_logprobs", ctypes.c_int32),
                # since 0.4 (context shift)
                ("n_keep", ctypes.c_int32), ("n_discard", ctypes.c_int32)]


class _TokenLogprob(ctypes.Structure):
    _fields_ = [("token", ctypes.c_int32), ("logprob", ctypes.c_float)]


class _TokenInfo(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("token", ctypes.c_int32), ("logprob", ctypes.c_float),
                ("text", ctypes.POINTER(ctypes.c_char)), ("text_len", ctypes.c_size_t),
                ("top", ctypes.POINTER(_TokenLogprob)), ("n_top", ctypes.c_size_t)]


_TOKEN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t, ctypes.c_int32,
                                   ctypes.c_void_p)
_LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_char_p, ctypes.c_void_p)
_TOKEN_INFO_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_TokenInfo), ctypes.c_void_p)
GENERATE_LOGPROBS = 8


# ---- loading the library ----------------------------------------------------------------------------------------
def _candidates() -> Iterable[str]:
    """The search order documented at the top of this module."""
    env = os.environ.get("MISTRAL_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = os.path.join(here, "libmistral.so")
    if os.path.exists(bundled):
        yield bundled
    root = os.path.abspath(os.path.join(here, "..", "..", ".."))
    if os.path.exists(os.path.join(root, "include", "mistral.h")):  # bindings/python/mistral in a checkout
        for sub in (".build/release", ".build/debug"):
            path = os.path.join(root, sub, "libmistral.so")
            if os.path.exists(path):
                yield path
    yield "libmistral.so.0"
    found = ctypes.util.find_library("mistral")
    if found:
        yield found


def _load() -> ctypes.CDLL:
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError("cannot load libmistral (set MISTRAL_LIBRARY): " + "; ".join(errors))


_lib = _load()
library_path = getattr(_lib, "_name", "")

_P = ctypes.c_void_p
_sz = ctypes.c_size_t
_szp = ctypes.POINTER(ctypes.c_size_t)
_i32p = ctypes.POINTER(ctypes.c_int32)
_signatures = {
    "mistral_version": ([], ctypes.c_char_p),
    "mistral_version_number": ([], ctypes.c_int32),
    "mistral_last_error": ([], ctypes.c_char_p),
    "mistral_status_string": ([ctypes.c_int32], ctypes.c_char_p),
    "mistral_log_set": ([_LOG_CALLBACK, ctypes.c_int32, _P], None),
    "mistral_model_params_init": ([ctypes.POINTER(_ModelParams)], None),
    "mistral_model_load": ([ctypes.c_char_p, ctypes.POINTER(_ModelParams), ctypes.POINTER(_P)], ctypes.c_int32),
    "mistral_model_free": ([_P], None),
    "mistral_model_estimate": ([ctypes.c_char_p, ctypes.POINTER(_ModelParams), ctypes.POINTER(_SessionParams),
                                ctypes.POINTER(_MemoryEstimate)], ctypes.c_int32),
    "mistral_model_n_vocab": ([_P], ctypes.c_int32),
    "mistral_model_n_ctx_train": ([_P], ctypes.c_int32),
    "mistral_model_n_embd": ([_P], ctypes.c_int32),
    "mistral_model_n_layer": ([_P], ctypes.c_int32),
    "mistral_model_token_bos": ([_P], ctypes.c_int32),
    "mistral_model_token_eos": ([_P], ctypes.c_int32),
    "mistral_model_add_bos": ([_P], ctypes.c_int32),
    "mistral_model_token_is_eog": ([_P, ctypes.c_int32], ctypes.c_int32),
    "mistral_model_arch": ([_P], ctypes.c_char_p),
    "mistral_model_desc": ([_P], ctypes.c_char_p),
    "mistral_model_chat_template": ([_P], ctypes.c_char_p),
    "mistral_image_load_file": ([ctypes.c_char_p, ctypes.POINTER(_P)], ctypes.c_int32),
    "mistral_image_load_memory": ([ctypes.c_char_p, _sz, ctypes.POINTER(_P)], ctypes.c_int32),
    "mistral_image_from_rgb": ([ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(_P)], ctypes.c_int32),
    "mistral_image_free": ([_P], None),
    "mistral_image_width": ([_P], ctypes.c_uint32),
    "mistral_image_height": ([_P], ctypes.c_uint32),
    "mistral_image_rgb": ([_P], ctypes.POINTER(ctypes.c_uint8)),
    "mistral_model_has_vision": ([_P], ctypes.c_int32),
    "mistral_image_token_grid": ([_P, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32),
                                  ctypes.POINTER(ctypes.c_uint32)], ctypes.c_int32),
    "mistral_image_embed": ([_P, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_float), _sz,
                             _szp], ctypes.c_int32),
    "mistral_eval_embd": ([_P, ctypes.POINTER(ctypes.c_float), _sz, ctypes.POINTER(ctypes.c_float)], ctypes.c_int32),
    "mistral_session_eval_chat": ([_P, ctypes.c_char_p, ctypes.POINTER(_ChatMessage), _sz], ctypes.c_int32),
    "mistral_chat_tokenize": ([_P, ctypes.c_char_p, ctypes.POINTER(_ChatMessage), _sz, ctypes.c_uint32, _i32p, _sz,
                               _szp], ctypes.c_int32),
    "mistral_chat_tokenize_json": ([_P, ctypes.c_char_p, ctypes.c_char_p, _sz, _P, _sz, ctypes.c_uint32, _i32p, _sz,
                                    _szp], ctypes.c_int32),
    "mistral_session_eval_chat_json": ([_P, ctypes.c_char_p, ctypes.c_char_p, _sz, _P, _sz], ctypes.c_int32),
    "mistral_tool_calls_parse": ([_P, _i32p, _sz, ctypes.POINTER(_P)], ctypes.c_int32),
    "mistral_tool_calls_parse_text": ([ctypes.c_char_p, _sz, ctypes.POINTER(_P)], ctypes.c_int32),
    "mistral_session_last_tool_calls": ([_P, ctypes.POINTER(_P)], ctypes.c_int32),
    "mistral_tool_calls_count": ([_P], _sz),
    "mistral_tool_calls_name": ([_P, _sz], ctypes.c_char_p),
    "mistral_tool_calls_arguments": ([_P, _sz], ctypes.c_char_p),
    "mistral_tool_calls_id": ([_P, _sz], ctypes.c_char_p),
    "mistral_tool_calls_content": ([_P], ctypes.c_char_p),
    "mistral_tool_calls_json": ([_P], ctypes.c_char_p),
    "mistral_tool_calls_free": ([_P], None),
    "mistral_tokenize": ([_P, ctypes.c_char_p, _sz, ctypes.c_uint32, _i32p, _sz, _szp], ctypes.c_int32),
    "mistral_detokenize": ([_P, _i32p, _sz, ctypes.c_uint32, ctypes.c_char_p, _sz, _szp], ctypes.c_int32),
    "mistral_token_to_piece": ([_P, ctypes.c_int32, ctypes.c_uint32, ctypes.c_char_p, _sz, _szp], ctypes.c_int32),
    "mistral_session_params_init": ([ctypes.POINTER(_SessionParams)], None),
    "mistral_session_create": ([_P, ctypes.POINTER(_SessionParams), ctypes.POINTER(_P)], ctypes.c_int32),
    "mistral_session_free": ([_P], None),
    "mistral_session_reset": ([_P], ctypes.c_int32),
    "mistral_session_truncate": ([_P, ctypes.c_uint32], ctypes.c_int32),
    "mistral_session_n_past": ([_P], ctypes.c_uint32),
    "mistral_session_n_ctx": ([_P], ctypes.c_uint32),
    "mistral_eval": ([_P, _i32p, _sz, ctypes.POINTER(ctypes.c_float)], ctypes.c_int32),
    "mistral_generate_params_init": ([ctypes.POINTER(_GenerateParams)], None),
    "mistral_generate": ([_P, _i32p, _sz, ctypes.POINTER(_GenerateParams), _TOKEN_CALLBACK, _P], ctypes.c_int32),
    "mistral_generate_ex": ([_P, _i32p, _sz, ctypes.POINTER(_GenerateParams), _TOKEN_INFO_CALLBACK, _P], ctypes.c_int32),
    "mistral_json_schema_to_grammar": ([ctypes.c_char_p, ctypes.c_char_p, _sz, _szp], ctypes.c_int32),
    "mistral_session_last_stop_reason": ([_P], ctypes.c_int32),
    "mistral_session_last_n_generated": ([_P], ctypes.c_uint32),
}
# ---- batching (0.4): shared thread pool and continuous batching, see "Batching" in mistral.h --------------------
class _BatchStats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("steps", ctypes.c_uint64), ("batched_steps", ctypes.c_uint64),
                ("max_sessions", ctypes.c_uint64), ("max_rows", ctypes.c_uint64), ("rows", ctypes.c_uint64),
                ("busy_ns", ctypes.c_uint64)]


class BatchStats(NamedTuple):
    """How much batching a model's sessions got (Model.batch_stats)."""

    steps: int          # forward steps run
    batched_steps: int  # steps that evaluated more than one session
    max_sessions: int   # the most sessions one step evaluated
    max_rows: int       # the most positions one step evaluated
    rows: int           # positions evaluated in all steps
    busy_ns: int        # nanoseconds spent in forward steps


_signatures["mistral_model_n_threads"] = ([_P], ctypes.c_int32)
_signatures["mistral_model_batch_stats"] = ([_P, ctypes.POINTER(_BatchStats), ctypes.c_int32], ctypes.c_int32)
__all__.append("BatchStats")
# ---- end of the batching block ------------------------------------------------------------------------------------

for _name, (_args, _res) in _signatures.items():
    _fn = getattr(_lib, _name)
    _fn.argtypes = _args
    _fn.restype = _res


def _check(status: int, call: str) -> None:
    if status != OK:
        raise MistralError(status, (_lib.mistral_last_error() or b"").decode("utf-8", "replace"), call)


def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return _lib.mistral_version().decode()


def _schema_text(schema) -> bytes:
    """A JSON schema given as a dict (serialised here) or as JSON text."""
    if isinstance(schema, dict):
        import json
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


class Completion(str):
    """The text generate() / chat() return (a str), with `.logprobs` when they were asked for: OpenAI's shape,
    {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]} (each entry also
    carries the token's "id"), else None."""

    logprobs: Optional[dict] = None


class Piece(str):
    """A piece stream() yields (a str), with `.logprobs`: the OpenAI-shaped entries of the tokens it completes
    (a list, possibly empty), or None when logprobs were not asked for."""

    logprobs: Optional[list] = None


# The ctypes wrapper the library may call. mistral_log_set returns only when no thread is inside the old callback
# any more, so the old wrapper is dropped after that call, never before it.
_log_keepalive: List[Any] = []
_log_lock = threading.Lock()


def set_log_callback(fn: Optional[Callable[[int, str], None]], level: int = LOG_WARN) -> None:
    """Route the library's diagnostics to fn(level, message); None turns logging off. fn may be called from any
    thread; it must not call set_log_callback itself."""
    if fn is not None and not callable(fn):
        raise TypeError("fn must be callable or None")
    level = _int_arg("level", level, 0, 3)
    if fn is None:
        cb = _LOG_CALLBACK()
    else:
        def trampoline(lvl, msg, _ud):
            try:
                fn(lvl, msg.decode("utf-8", "replace") if msg else "")
            except BaseException:  # a logging failure must never unwind into the library
                pass

        cb = _LOG_CALLBACK(trampoline)
    with _log_lock:
        _log_keepalive.append(cb)  # alive before the library can see it
        _lib.mistral_log_set(cb, level, None)
        del _log_keepalive[:-1]  # the library no longer calls the older wrappers


# ---- argument checks (before anything reaches ctypes, which would wrap or truncate silently) --------------------
_I32 = (-(1 << 31), (1 << 31) - 1)
_U32 = (0, (1 << 32) - 1)


def _int_arg(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import operator
            value = operator.index(value)  # numpy integers
        except TypeError:
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}...{hi}, got {value}")
    return int(value)


def _float_arg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy floats
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _text_arg(name: str, value: Any) -> bytes:
    """A str (UTF-8) or bytes-like object; anything else (an int would become that many NUL bytes) is refused."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be str or bytes, got {type(value).__name__}")


def _bytes_arg(name: str, value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be bytes-like, got {type(value).__name__}")


def _cstr_arg(name: str, value: Any) -> bytes:
    """Text for a NUL-terminated C string: an embedded NUL would silently cut it short."""
    data = _text_arg(name, value)
    if b"\0" in data:
        raise ValueError(f"{name} contains a NUL character")
    return data


def _path_arg(name: str, value: Any) -> bytes:
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a path (str, bytes or os.PathLike), got {type(value).__name__}")
    data = os.fsencode(value)
    if b"\0" in data:
        raise ValueError(f"{name} contains a NUL character")
    return data


def _int_array(ids: Sequence[int]):
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
        raise TypeError(f"token ids must be a sequence of integers, got {type(ids).__name__}")
    ids = [_int_arg("token id", i, *_I32) for i in ids]
    return (ctypes.c_int32 * max(len(ids), 1))(*ids)


class _Handle:
    """An owned library handle: released by close(), the context manager, or garbage collection."""

    _handle = None
    _kind = ""

    def _free(self, handle) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._handle:
            self._free(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> "Any":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def handle(self) -> ctypes.c_void_p:
        """The library handle; raises MistralError(ERR_INVALID_ARGUMENT) once closed."""
        if not self._handle:
            raise MistralError(ERR_INVALID_ARGUMENT, f"the {self._kind} is closed")
        return self._handle


# ---- Images --------------------------------------------------------------------------------------------------------
class Image(_Handle):
    """A decoded image (packed RGB8). Build one with Image.open(path), Image.from_bytes(png_or_jpeg),
    Image.from_rgb(pixels, width, height), or Image.of(x) for a path, bytes, a Pillow image or a numpy array."""

    _kind = "image"
    _free = staticmethod(lambda h: _lib.mistral_image_free(h))

    def __init__(self, handle: ctypes.c_void_p):
        self._handle = handle

    @classmethod
    def _make(cls, call: str, *args: Any) -> "Image":
        handle = ctypes.c_void_p()
        _check(getattr(_lib, call)(*args, ctypes.byref(handle)), call)
        return cls(handle)

    @classmethod
    def open(cls, path: Union[str, "os.PathLike[str]"]) -> "Image":
        """Decodes a PNG or JPEG file."""
        return cls._make("mistral_image_load_file", _path_arg("path", path))

    @classmethod
    def from_bytes(cls, data: bytes) -> "Image":
        """Decodes PNG or JPEG bytes held in memory."""
        data = _bytes_arg("data", data)
        return cls._make("mistral_image_load_memory", data, len(data))

    @classmethod
    def from_rgb(cls, pixels: bytes, width: int, height: int) -> "Image":
        """Wraps a copy of packed RGB8 pixels (width * height * 3 bytes)."""
        data = _bytes_arg("pixels", pixels)
        width, height = _int_arg("width", width, *_U32), _int_arg("height", height, *_U32)
        if len(data) != width * height * 3:
            raise MistralError(ERR_INVALID_ARGUMENT, f"{len(data)} bytes for a {width}x{height} RGB image")
        return cls._make("mistral_image_from_rgb", data, width, height)

    @classmethod
    def of(cls, x: Any) -> "Image":
        """An Image from a path, PNG/JPEG bytes, a Pillow image, a numpy (H, W, 3) or (H, W) uint8 array, or an
        Image (returned as it is)."""
        if isinstance(x, Image):
            return x
        if isinstance(x, (str, os.PathLike)):
            return cls.open(x)
        if isinstance(x, (bytes, bytearray, memoryview)):
            return cls.from_bytes(bytes(x))
        if hasattr(x, "convert") and hasattr(x, "size") and hasattr(x, "tobytes"):  # Pillow, alpha onto white
            if x.mode in ("RGBA", "LA", "P", "PA"):
                rgba = x.convert("RGBA")
                white = rgba.copy()
                white.paste((255, 255, 255, 255), (0, 0) + rgba.size)
                white.alpha_composite(rgba)
                x = white
            rgb = x.convert("RGB")
            return cls.from_rgb(rgb.tobytes(), rgb.size[0], rgb.size[1])
        if hasattr(x, "shape") and hasattr(x, "dtype"):  # numpy (H, W, 3) uint8, or (H, W) grayscale
            import numpy as np
            a = np.ascontiguousarray(x)
            if a.ndim == 2:
                a = np.repeat(a[:, :, None], 3, axis=2)
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
                raise MistralError(ERR_INVALID_ARGUMENT, "numpy images must be (H, W, 3) or (H, W) uint8")
            return cls.from_rgb(a.tobytes(), a.shape[1], a.shape[0])
        raise MistralError(ERR_INVALID_ARGUMENT, f"cannot make an image of {type(x).__name__}")

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(_lib.mistral_image_width(self.handle))

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(_lib.mistral_image_height(self.handle))

    def rgb(self) -> bytes:
        """The pixels, packed RGB8, row-major (width * height * 3 bytes)."""
        return ctypes.string_at(_lib.mistral_image_rgb(self.handle), self.width * self.height * 3)


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


class ChatReply(Completion):
    """Session.chat's answer: the text (a str, as before; `.logprobs` as on a Completion), plus the OpenAI-shaped `tool_calls` the model made (None
    when it made none), `tool_call_error` (the parser's message when the model wrote malformed call JSON; the text
    is then everything it wrote) and `message`, the reply as an assistant message to append to the conversation."""

    tool_calls: Optional[list] = None
    tool_call_error: Optional[str] = None

    @property
    def message(self) -> dict:
        """The reply as the assistant message to append to the conversation (with its tool_calls, if any)."""
        if self.tool_calls:
            return {"role": "assistant", "content": str(self) or None, "tool_calls": self.tool_calls}
        return {"role": "assistant", "content": str(self)}


PathLike = Union[str, bytes, "os.PathLike[str]"]


def _model_params(vocab_only: bool, tokenizer_path: Optional[PathLike], weight_type: Optional[str],
                  mmproj_path: Optional[PathLike]) -> _ModelParams:
    params = _ModelParams()
    _lib.mistral_model_params_init(ctypes.byref(params))
    params.vocab_only = 1 if vocab_only else 0
    if weight_type not in WEIGHT_TYPES:
        raise MistralError(ERR_INVALID_ARGUMENT, f"weight_type must be one of {sorted(k for k in WEIGHT_TYPES if k)}")
    params.weight_type = WEIGHT_TYPES[weight_type]
    params.tokenizer_path = _path_arg("tokenizer_path", tokenizer_path) if tokenizer_path is not None else None
    params.mmproj_path = _path_arg("mmproj_path", mmproj_path) if mmproj_path is not None else None
    return params


def _session_params(n_ctx: int, threads: int, seed: Optional[int], n_batch: Optional[int],
                    kv_type: str) -> _SessionParams:
    if kv_type not in Session.KV_TYPES:
        raise ValueError(f"kv_type must be one of {sorted(Session.KV_TYPES)}, got {kv_type!r}")
    params = _SessionParams()
    _lib.mistral_session_params_init(ctypes.byref(params))
    params.n_ctx = _int_arg("n_ctx", n_ctx, *_U32)
    params.n_threads = _int_arg("threads", threads, 0, 512)
    if seed is not None:
        params.seed = _int_arg("seed", seed, 0, (1 << 64) - 1)
    if n_batch is not None:
        params.n_batch = _int_arg("n_batch", n_batch, 1, 8192)
    params.kv_type = Session.KV_TYPES[kv_type]
    return params


class MemoryEstimate(NamedTuple):
    """Bytes a model and one session on it will need (see mistral_memory_estimate in mistral.h)."""

    weights_bytes: int          # decoder weights resident once loaded (in place, or converted copies)
    kv_bytes_per_position: int  # keys + values of one position, every layer, in the KV type asked for
    n_ctx: int                  # the context the session would get (n_ctx=0 resolved)
    kv_bytes: int               # kv_bytes_per_position * n_ctx
    scratch_bytes: int          # activations of one batch chunk, logits, per-thread attention scratch
    other_bytes: int            # tokenizer tables and the vision encoder
    total_bytes: int            # the sum: peak resident memory with a full context


def estimate(path: PathLike, n_ctx: int = 0, kv_type: str = "f16", weight_type: Optional[str] = None,
             threads: int = 0, n_batch: Optional[int] = None, vocab_only: bool = False,
             tokenizer_path: Optional[PathLike] = None, mmproj_path: Optional[PathLike] = None) -> MemoryEstimate:
    """Memory that Model(path, ...) and Session(model, n_ctx=..., kv_type=...) will need, computed from the files'
    headers before anything is loaded (no weights are read)."""
    mp = _model_params(vocab_only, tokenizer_path, weight_type, mmproj_path)
    sp = _session_params(n_ctx, threads, None, n_batch, kv_type)
    out = _MemoryEstimate()
    out.struct_size = ctypes.sizeof(_MemoryEstimate)
    _check(_lib.mistral_model_estimate(_path_arg("path", path), ctypes.byref(mp), ctypes.byref(sp), ctypes.byref(out)),
           "mistral_model_estimate")
    return MemoryEstimate(out.weights_bytes, out.kv_bytes_per_position, out.n_ctx, out.kv_bytes, out.scratch_bytes,
                          out.other_bytes, out.total_bytes)


# ---- Model ---------------------------------------------------------------------------------------------------------
class Model(_Handle):
    """Weights + tokenizer. Immutable after loading; may be shared by sessions on several threads."""

    _kind = "model"
    _free = staticmethod(lambda h: _lib.mistral_model_free(h))

    def __init__(self, path: PathLike, vocab_only: bool = False, tokenizer_path: Optional[PathLike] = None,
                 weight_type: Optional[str] = None, mmproj_path: Optional[PathLike] = None,
                 progress: Optional[Callable[[float], Optional[bool]]] = None, threads: int = 0,
                 max_batch_sessions: int = 16):
        """path: a GGUF file, a Hugging Face or Mistral native folder, or a tekken.json (tokenizer only).
        weight_type: None (as stored), "q8_0" or "q4_0" to re-quantize float weights while loading.
        threads: the worker pool all sessions of this model share (0: physical cores); max_batch_sessions: how
        many sessions used concurrently from different threads are evaluated together per step (1: no batching).
        progress(fraction): told how far the load is (0 first, 1 last, increasing in between); returning True
        cancels it with MistralError(ERR_CANCELLED), and an exception raised in it (KeyboardInterrupt included)
        cancels it and is re-raised here."""
        self._handle = None
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable or None")
        params = _model_params(vocab_only, tokenizer_path, weight_type, mmproj_path)
        params.n_threads = _int_arg("threads", threads, 0, 512)
        params.max_batch_sessions = _int_arg("max_batch_sessions", max_batch_sessions, 1, 256)
        error: List[BaseException] = []

        def trampoline(fraction: float, _ud: Any) -> int:
            try:
                return 1 if progress is not None and progress(float(fraction)) else 0
            except BaseException as e:  # never let an exception unwind through C
                error.append(e)
                return 1

        cb = _PROGRESS_CALLBACK(trampoline) if progress is not None else _PROGRESS_CALLBACK()
        params.progress_callback = cb
        handle = ctypes.c_void_p()
        status = _lib.mistral_model_load(_path_arg("path", path), ctypes.byref(params), ctypes.byref(handle))
        if error:
            raise error[0]
        _check(status, "mistral_model_load")
        self._handle = handle
        self.path = os.fspath(path)

    @property
    def n_threads(self) -> int:
        """Threads of the worker pool this model's sessions share (0 for a tokenizer-only model)."""
        return int(_lib.mistral_model_n_threads(self.handle))

    def batch_stats(self, reset: bool = False) -> "BatchStats":
        """Counters of the forward steps this model's sessions ran: how many, how many batched several sessions,
        the most sessions and rows in one step. reset=True sets them back to zero after reading."""
        out = _BatchStats()
        out.struct_size = ctypes.sizeof(_BatchStats)
        _check(_lib.mistral_model_batch_stats(self.handle, ctypes.byref(out), 1 if reset else 0),
               "mistral_model_batch_stats")
        return BatchStats(out.steps, out.batched_steps, out.max_sessions, out.max_rows, out.rows, out.busy_ns)

    @property
    def n_vocab(self) -> int:
        """Vocabulary size (rows of the logits)."""
        return int(_lib.mistral_model_n_vocab(self.handle))

    @property
    def n_ctx_train(self) -> int:
        """The context length the model was trained for (0 for a tokenizer-only model)."""
        return int(_lib.mistral_model_n_ctx_train(self.handle))

    @property
    def n_embd(self) -> int:
        """Embedding width: the length of each row image_embed returns and eval_embd takes."""
        return int(_lib.mistral_model_n_embd(self.handle))

    @property
    def n_layer(self) -> int:
        """Decoder layers (0 for a tokenizer-only model)."""
        return int(_lib.mistral_model_n_layer(self.handle))

    @property
    def bos(self) -> int:
        """The beginning-of-sequence token id, -1 when the model has none."""
        return int(_lib.mistral_model_token_bos(self.handle))

    @property
    def eos(self) -> int:
        """The end-of-sequence token id, -1 when the model has none."""
        return int(_lib.mistral_model_token_eos(self.handle))

    @property
    def arch(self) -> str:
        """Architecture name, e.g. "llama", "mistral3", or "tokenizer"."""
        return _lib.mistral_model_arch(self.handle).decode()

    @property
    def desc(self) -> str:
        """A one-line description: format, layers, widths, heads, vocabulary, trained context."""
        return _lib.mistral_model_desc(self.handle).decode()

    @property
    def add_bos(self) -> bool:
        """Whether the tokenizer expects a BOS token at the start of a text."""
        return bool(_lib.mistral_model_add_bos(self.handle))

    @property
    def chat_template(self) -> Optional[str]:
        """"mistral-v7", "chatml", or None when the model's template is not recognised."""
        name = _lib.mistral_model_chat_template(self.handle)
        return name.decode() if name else None

    def chat_tokenize(self, messages: Sequence[Dict[str, Any]], tools: Optional[Sequence[Dict[str, Any]]] = None,
                      template: Optional[str] = None, add_generation_prompt: bool = True) -> List[int]:
        """Token ids of a conversation in OpenAI's shape, rendered with the model's chat template (or `template`)
        exactly as mistral-common does: [{"role": "system"|"user"|"assistant"|"tool", "content": str | None,
        "images": [path | bytes | PIL image | numpy array | Image, ...]}, ...]; assistant messages may carry
        "tool_calls": [{"id", "type": "function", "function": {"name", "arguments": JSON str}}], tool results are
        {"role": "tool", "tool_call_id", "name", "content"}; `tools` is OpenAI's tool list. Images become their
        [IMG] grids."""
        flags = CHAT_ADD_GENERATION_PROMPT if add_generation_prompt else 0
        tname = _cstr_arg("template", template) if template is not None else None
        if _needs_json(messages, tools):
            data, images, keep = _chat_request(messages, tools)
            n = ctypes.c_size_t(0)
            args = (self.handle, tname, data, len(data), images, len(keep), flags)
            status = _lib.mistral_chat_tokenize_json(*args, None, 0, ctypes.byref(n))
            if status not in (OK, ERR_BUFFER_TOO_SMALL):
                _check(status, "mistral_chat_tokenize_json")
            buf = (ctypes.c_int32 * max(n.value, 1))()
            _check(_lib.mistral_chat_tokenize_json(*args, buf, n.value, ctypes.byref(n)), "mistral_chat_tokenize_json")
            del keep
            return list(buf[: n.value])
        arr, keep = _chat_array(messages)
        n = ctypes.c_size_t(0)
        status = _lib.mistral_chat_tokenize(self.handle, tname, arr, len(messages), flags, None, 0, ctypes.byref(n))
        if status not in (OK, ERR_BUFFER_TOO_SMALL):
            _check(status, "mistral_chat_tokenize")
        buf = (ctypes.c_int32 * max(n.value, 1))()
        _check(_lib.mistral_chat_tokenize(self.handle, tname, arr, len(messages), flags, buf, n.value, ctypes.byref(n)),
               "mistral_chat_tokenize")
        del keep
        return list(buf[: n.value])

    def parse_tool_calls(self, tokens: Sequence[int]) -> dict:
        """Parses generated token ids (the [TOOL_CALLS] token starts the calls); see mistral.parse_tool_calls."""
        arr = _int_array(tokens)
        handle = ctypes.c_void_p()
        return _take_tool_calls(_lib.mistral_tool_calls_parse(self.handle, arr, len(tokens), ctypes.byref(handle)),
                                handle, "mistral_tool_calls_parse")

    def is_eog(self, token: int) -> bool:
        """Whether `token` ends a turn or the text (EOS, <|im_end|>, ...)."""
        return bool(_lib.mistral_model_token_is_eog(self.handle, _int_arg("token", token, *_I32)))

    @property
    def has_vision(self) -> bool:
        """Whether the model has a vision encoder (needed by image_embed and images in chat messages)."""
        return bool(_lib.mistral_model_has_vision(self.handle))

    def image_grid(self, width: int, height: int) -> Tuple[int, int]:
        """(rows, cols) of [IMG] tokens an image of this size becomes."""
        width, height = _int_arg("width", width, *_U32), _int_arg("height", height, *_U32)
        rows, cols = ctypes.c_uint32(), ctypes.c_uint32()
        _check(_lib.mistral_image_token_grid(self.handle, width, height, ctypes.byref(rows), ctypes.byref(cols)),
               "mistral_image_token_grid")
        return rows.value, cols.value

    def image_embed(self, image: Any) -> Any:
        """Embedding rows of an image (path, bytes, Pillow image, numpy array or Image): a float32 numpy array
        (rows * cols, n_embd), one row per [IMG] token in prompt order."""
        import numpy as np
        img = Image.of(image)
        rgb = img.rgb()
        n = ctypes.c_size_t(0)
        status = _lib.mistral_image_embed(self.handle, rgb, img.width, img.height, None, 0, ctypes.byref(n))
        if status not in (OK, ERR_BUFFER_TOO_SMALL):
            _check(status, "mistral_image_embed")
        out = np.empty((n.value, self.n_embd), dtype=np.float32)
        _check(_lib.mistral_image_embed(self.handle, rgb, img.width, img.height,
                                        out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n.value, ctypes.byref(n)),
               "mistral_image_embed")
        return out

    def tokenize(self, text: Union[str, bytes], add_bos: bool = False, special: bool = False) -> List[int]:
        """Token ids of `text`; special=True turns control-token text (e.g. "<|im_start|>") into control tokens."""
        data = _text_arg("text", text)
        flags = (TOKENIZE_ADD_BOS if add_bos else 0) | (TOKENIZE_PARSE_SPECIAL if special else 0)
        n = ctypes.c_size_t(0)
        capacity = len(data) + 2
        buf = (ctypes.c_int32 * capacity)()
        status = _lib.mistral_tokenize(self.handle, data, len(data), flags, buf, capacity, ctypes.byref(n))
        if status == ERR_BUFFER_TOO_SMALL:
            capacity = n.value
            buf = (ctypes.c_int32 * capacity)()
            status = _lib.mistral_tokenize(self.handle, data, len(data), flags, buf, capacity, ctypes.byref(n))
        _check(status, "mistral_tokenize")
        return list(buf[: n.value])

    def detokenize_bytes(self, ids: Sequence[int], special: bool = False) -> bytes:
        """The bytes of token ids (UTF-8 unless the ids split a character); special=True renders control tokens."""
        flags = DETOKENIZE_SPECIAL if special else 0
        arr = _int_array(ids)
        n = ctypes.c_size_t(0)
        status = _lib.mistral_detokenize(self.handle, arr, len(ids), flags, None, 0, ctypes.byref(n))
        if status not in (OK, ERR_BUFFER_TOO_SMALL):
            _check(status, "mistral_detokenize")
        buf = ctypes.create_string_buffer(n.value + 1)
        _check(_lib.mistral_detokenize(self.handle, arr, len(ids), flags, buf, n.value + 1, ctypes.byref(n)),
               "mistral_detokenize")
        return buf.raw[: n.value]

    def detokenize(self, ids: Sequence[int], special: bool = False) -> str:
        """detokenize_bytes decoded as UTF-8 (invalid bytes replaced)."""
        return self.detokenize_bytes(ids, special).decode("utf-8", "replace")

    def token_to_piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token."""
        token = _int_arg("token", token, *_I32)
        n = ctypes.c_size_t(0)
        buf = ctypes.create_string_buffer(256)
        status = _lib.mistral_token_to_piece(self.handle, token, DETOKENIZE_SPECIAL if special else 0, buf, 256,
                                             ctypes.byref(n))
        if status == ERR_BUFFER_TOO_SMALL:
            buf = ctypes.create_string_buffer(n.value + 1)
            status = _lib.mistral_token_to_piece(self.handle, token, DETOKENIZE_SPECIAL if special else 0, buf,
                                                 n.value + 1, ctypes.byref(n))
        _check(status, "mistral_token_to_piece")
        return buf.raw[: n.value]


# ---- Session -------------------------------------------------------------------------------------------------------
class Session(_Handle):
    """KV cache + sampler state for one conversation. Use from one thread at a time: a call while another one on the
    same session is running (from another thread, or from inside on_token) raises MistralError(ERR_INVALID_ARGUMENT,
    "session is busy")."""

    _kind = "session"
    _free = staticmethod(lambda h: _lib.mistral_session_free(h))

    KV_TYPES = {"f16": 0, "f32": 1, "q8_0": 2}

    def __init__(self, model: Model, n_ctx: int = 0, threads: int = 0, seed: Optional[int] = None,
                 n_batch: Optional[int] = None, kv_type: str = "f16"):
        """n_ctx: positions the KV cache holds (0 = min(trained context, 4096)); threads: at most this many of the
        model's shared pool threads (0 = all of them);
        kv_type: how the KV cache stores keys and values, "f16" (default), "f32" or "q8_0" (34 bytes per 32
        values)."""
        self._handle = None
        self._calls = 0            # calls on this session now running (close() refuses while > 0)
        self._calls_lock = threading.Lock()
        self._refused = False      # the last generate() was refused before reaching the library
        if not isinstance(model, Model):
            raise TypeError(f"model must be a mistral.Model, got {type(model).__name__}")
        params = _session_params(n_ctx, threads, seed, n_batch, kv_type)
        self.model = model  # keeps the model alive as long as the session
        handle = ctypes.c_void_p()
        _check(_lib.mistral_session_create(model.handle, ctypes.byref(params), ctypes.byref(handle)),
               "mistral_session_create")
        self._handle = handle

    def _enter(self) -> None:
        with self._calls_lock:
            self._calls += 1

    def _leave(self) -> None:
        with self._calls_lock:
            self._calls -= 1

    def close(self) -> None:
        # Freeing the session under a running call (from on_token, or another thread) would pull the cache out
        # from under it.
        if getattr(self, "_calls", 0) > 0:
            raise MistralError(ERR_INVALID_ARGUMENT, "session is busy: cannot close it while a call on it is running")
        super().close()

    def _call(self, name: str, *args: Any) -> int:
        self._enter()
        try:
            return getattr(_lib, name)(*args)
        finally:
            self._leave()

    @property
    def n_past(self) -> int:
        """Positions of the context in use (tokens and image rows evaluated so far)."""
        return int(_lib.mistral_session_n_past(self.handle))

    @property
    def n_ctx(self) -> int:
        """Positions the context holds."""
        return int(_lib.mistral_session_n_ctx(self.handle))

    @property
    def last_n_generated(self) -> int:
        """Tokens sampled by the last generate() (0 when it was refused)."""
        return 0 if self._refused else int(_lib.mistral_session_last_n_generated(self.handle))

    @property
    def last_stop_reason(self) -> Optional[str]:
        """How the last generate() ended ("eog", "max_tokens", ...); "none" when it was refused."""
        if self._refused:
            return "none"
        return STOP_REASONS.get(_lib.mistral_session_last_stop_reason(self.handle))

    def reset(self) -> None:
        """Forgets the whole context and reseeds the sampler."""
        _check(self._call("mistral_session_reset", self.handle), "mistral_session_reset")

    def truncate(self, n_keep: int) -> None:
        """Keeps only the first n_keep positions (n_keep <= n_past)."""
        n_keep = _int_arg("n_keep", n_keep, *_U32)
        _check(self._call("mistral_session_truncate", self.handle, n_keep), "mistral_session_truncate")

    def eval(self, ids: Sequence[int], logits: bool = False) -> Any:
        """Appends tokens; with logits=True returns an (n, n_vocab) float32 numpy array (a flat list without numpy)."""
        arr = _int_array(ids)
        if not logits:
            _check(self._call("mistral_eval", self.handle, arr, len(ids), None), "mistral_eval")
            return None
        vocab = self.model.n_vocab
        try:
            import numpy as np
            out = np.empty((len(ids), vocab), dtype=np.float32)
            ptr = out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        except ImportError:
            out = (ctypes.c_float * (len(ids) * vocab))()
            ptr = out
        _check(self._call("mistral_eval", self.handle, arr, len(ids), ptr), "mistral_eval")
        return out if not isinstance(out, ctypes.Array) else list(out)

    def _prompt_ids(self, prompt: Any, add_bos: Optional[bool], special: bool) -> List[int]:
        if isinstance(prompt, (str, bytes, bytearray, memoryview)):
            if add_bos is None:
                add_bos = self.n_past == 0 and self.model.add_bos
            return self.model.tokenize(prompt, add_bos=add_bos, special=special)
        if isinstance(prompt, int) or not hasattr(prompt, "__iter__"):
            raise TypeError(f"prompt must be str, bytes or a sequence of token ids, got {type(prompt).__name__}")
        return [_int_arg("token id", i, *_I32) for i in prompt]

    def eval_embd(self, rows: Any, logits: bool = False) -> Any:
        """Appends positions given as embedding rows (e.g. from Model.image_embed), like eval() does for tokens."""
        import numpy as np
        a = np.ascontiguousarray(rows, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != self.model.n_embd:
            raise MistralError(ERR_INVALID_ARGUMENT, f"rows must be (n, {self.model.n_embd}) floats")
        out = np.empty((a.shape[0], self.model.n_vocab), dtype=np.float32) if logits else None
        _check(self._call("mistral_eval_embd", self.handle, a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                          a.shape[0], out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)) if logits else None),
               "mistral_eval_embd")
        return out

    def chat(self, messages: Sequence[Dict[str, Any]], tools: Optional[Sequence[Dict[str, Any]]] = None,
             template: Optional[str] = None, temperature: Optional[float] = None, **kwargs: Any) -> "ChatReply":
        """Answers the conversation `messages` (OpenAI-shaped, as Model.chat_tokenize takes them; the last one from
        the user or a tool; user messages may carry "images"), offering `tools` (OpenAI's tool list) to the model.
        The whole conversation is passed each time; the session evaluates only what it does not already hold, so
        earlier turns and images are not recomputed. Temperature defaults to the model's recommendation (0.15 for
        Mistral V7 models). Returns a ChatReply: the text, with `.tool_calls` (OpenAI-shaped) when the model called
        tools and `.message` to append to `messages`."""
        tname = _cstr_arg("template", template) if template is not None else None
        if _needs_json(messages, tools):
            data, images, keep = _chat_request(messages, tools)
            _check(self._call("mistral_session_eval_chat_json", self.handle, tname, data, len(data), images, len(keep)),
                   "mistral_session_eval_chat_json")
        else:
            arr, keep = _chat_array(messages)
            _check(self._call("mistral_session_eval_chat", self.handle, tname, arr, len(messages)),
                   "mistral_session_eval_chat")
        del keep
        if temperature is None:
            temperature = {"mistral-v7": 0.15, "mistral-v3": 0.3}.get(template or self.model.chat_template, 0.7)
        text = self.generate([], temperature=temperature, **kwargs)
        handle = ctypes.c_void_p()
        status = self._call("mistral_session_last_tool_calls", self.handle, ctypes.byref(handle))
        if status == ERR_FORMAT:
            reply = ChatReply(text)
            reply.tool_call_error = (_lib.mistral_last_error() or b"").decode("utf-8", "replace")
            reply.logprobs = text.logprobs
            return reply
        parsed = _take_tool_calls(status, handle, "mistral_session_last_tool_calls")
        reply = ChatReply(parsed["content"] if parsed["tool_calls"] else text)
        reply.tool_calls = parsed["tool_calls"]
        reply.logprobs = text.logprobs
        return reply

    def _params(self, max_tokens: int, temperature: float, top_k: int, top_p: float, min_p: float,
                repeat_penalty: float, repeat_last_n: int, seed: int, stop: Any, ignore_eos: bool, special_out: bool,
                reuse_prefix: bool = False) -> Tuple[Any, Any]:
        p = _GenerateParams()
        _lib.mistral_generate_params_init(ctypes.byref(p))
        p.max_tokens = _int_arg("max_tokens", max_tokens, *_I32)
        p.temperature, p.top_p = _float_arg("temperature", temperature), _float_arg("top_p", top_p)
        p.min_p, p.repeat_penalty = _float_arg("min_p", min_p), _float_arg("repeat_penalty", repeat_penalty)
        p.top_k = _int_arg("top_k", top_k, *_I32)
        p.repeat_last_n = _int_arg("repeat_last_n", repeat_last_n, *_I32)
        p.seed = _int_arg("seed", seed, 0, (1 << 64) - 1)
        p.flags = ((GENERATE_IGNORE_EOS if ignore_eos else 0) | (GENERATE_SPECIAL if special_out else 0)
                   | (GENERATE_REUSE_PREFIX if reuse_prefix else 0))
        if stop is None:
            stop = []
        elif isinstance(stop, (str, bytes)):
            stop = [stop]  # one stop string, not one per character
        elif not isinstance(stop, (list, tuple)):
            raise TypeError(f"stop must be a str or a list of str, got {type(stop).__name__}")
        if len(stop) > 64:
            raise ValueError(f"at most 64 stop strings, got {len(stop)}")
        stops = [_cstr_arg("stop string", x) for x in stop]
        keep = (ctypes.c_char_p * max(len(stops), 1))(*stops)
        p.stop = ctypes.cast(keep, ctypes.POINTER(ctypes.c_char_p)) if stops else None
        p.n_stop = len(stops)
        return p, keep

    def generate(self, prompt: Union[str, bytes, Sequence[int]] = "", max_tokens: int = 256,
                 temperature: float = 0.8, top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05,
                 repeat_penalty: float = 1.0, repeat_last_n: int = 64, seed: int = 0,
                 stop: Optional[Union[str, Sequence[str]]] = None, ignore_eos: bool = False,
                 special_out: bool = False, add_bos: Optional[bool] = None, special: bool = True,
                 reuse_prefix: bool = False, on_token: Optional[Callable[[str, int], Optional[bool]]] = None,
                 grammar: Optional[str] = None, json_schema: Union[None, str, dict] = None,
                 logit_bias: Optional[dict] = None, logprobs: Union[None, bool, int] = None,
                 context_shift: bool = False, n_keep: int = 0, n_discard: int = 0,
                 _on_piece: Optional[Callable[[str, Any], None]] = None) -> "Completion":
        """Generates text after `prompt` (text, parsed for special tokens unless special=False, or token ids).

        `stop` is one stop string or a list of them. `on_token(piece, token)` is called with each piece of text;
        returning True stops generation. An exception raised in it (KeyboardInterrupt included) stops generation
        and is re-raised here; so is Ctrl-C while generating on the main thread. Returns the generated text (a
        `Completion`, i.e. a str). A full context ends generation with MistralError(ERR_CONTEXT_FULL) carrying the
        text so far as `.text`.

        Constrained output: `grammar` (GBNF text, llama.cpp's syntax) or `json_schema` (a dict or JSON text;
        {"type": "object"} = any JSON object). `logit_bias` maps token ids to a bias added to their logits
        (float("-inf") bans a token). `logprobs=True` puts each token's log-probability on the result's
        `.logprobs` (OpenAI's shape); `logprobs=N` adds the N most likely alternatives per token.

        `context_shift=True`: a full context does not end generation; the first `n_keep` positions (e.g. the system
        prompt) are kept, `n_discard` after them (0 = half of the rest) are dropped and generation goes on (see
        Session.shift)."""
        self._refused = True  # until the library has the call: a refused call leaves no stale stop reason
        if on_token is not None and not callable(on_token):
            raise TypeError("on_token must be callable or None")
        ids = self._prompt_ids(prompt, add_bos, special)
        params, keep = self._params(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n,
                                    seed, stop, ignore_eos, special_out, reuse_prefix)
        keep = [keep, self._constraints(params, grammar, json_schema, logit_bias, logprobs)]
        if context_shift:  # issue 11 (context shift)
            params.flags |= GENERATE_CONTEXT_SHIFT
        params.n_keep = _int_arg("n_keep", n_keep, 0, (1 << 31) - 1)
        params.n_discard = _int_arg("n_discard", n_discard, 0, (1 << 31) - 1)
        want_logprobs = params.flags & GENERATE_LOGPROBS != 0
        pieces: list = []
        entries: list = []
        pending: list = []  # entries of tokens whose text is still held back
        error: list = []
        interrupted = threading.Event()

        def on_info(info_ptr, _ud):
            try:
                if interrupted.is_set():
                    return 1
                info = info_ptr.contents
                if info.token >= 0:
                    entry = self._logprob_entry(info)
                    entries.append(entry)
                    pending.append(entry)
                if info.text_len == 0:
                    return 0
                piece = ctypes.string_at(info.text, info.text_len).decode("utf-8")
                pieces.append(piece)
                done = list(pending)
                pending.clear()
                if _on_piece is not None:
                    _on_piece(piece, done)
                if on_token is not None and on_token(piece, info.token):
                    return 1
                return 0
            except BaseException as e:  # never let an exception unwind through C
                error.append(e)
                return 1

        def trampoline(ptr, length, token, _ud):
            try:
                if interrupted.is_set():
                    return 1
                piece = ctypes.string_at(ptr, length).decode("utf-8")
                pieces.append(piece)
                if _on_piece is not None:
                    _on_piece(piece, None)
                if on_token is not None and on_token(piece, token):
                    return 1
                return 0
            except BaseException as e:  # never let an exception unwind through C
                error.append(e)
                return 1

        arr = _int_array(ids)
        if want_logprobs:
            cb, call = _TOKEN_INFO_CALLBACK(on_info), "mistral_generate_ex"
        else:
            cb, call = _TOKEN_CALLBACK(trampoline), "mistral_generate"
        with _SigintToFlag(interrupted):
            self._refused = False
            status = self._call(call, self.handle, arr, len(ids), ctypes.byref(params), cb, None)
        del keep
        if error:
            raise error[0]
        if interrupted.is_set():
            raise KeyboardInterrupt
        text = Completion("".join(pieces))
        if want_logprobs:
            text.logprobs = {"content": entries}
        if status == ERR_CANCELLED:
            return text  # the caller's on_token asked to stop
        if status != OK:
            err = MistralError(status, (_lib.mistral_last_error() or b"").decode("utf-8", "replace"), call)
            err.text = text
            raise err
        return text

    def _constraints(self, p, grammar, json_schema, logit_bias, logprobs):
        """Fills the 0.3 fields of the generate params; returns what must stay alive during the call."""
        keep = []
        if grammar is not None and json_schema is not None:
            raise ValueError("pass grammar or json_schema, not both")
        if grammar is not None:
            p.grammar = _cstr_arg("grammar", grammar)
            keep.append(p.grammar)
        if json_schema is not None:
            p.json_schema = _schema_text(json_schema)
            keep.append(p.json_schema)
        if logit_bias:
            if not isinstance(logit_bias, dict):
                raise TypeError(f"logit_bias must be a dict {{token id: bias}}, got {type(logit_bias).__name__}")
            toks = [_int_arg("logit_bias token", t, *_I32) for t in logit_bias]
            vals = []
            for v in logit_bias.values():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    try:
                        v = float(v)
                    except (TypeError, ValueError):
                        raise TypeError(f"logit_bias values must be numbers, got {type(v).__name__}") from None
                v = float(v)
                if math.isnan(v) or v == math.inf:
                    raise ValueError(f"logit_bias values must be finite or -inf, got {v}")
                vals.append(v)
            ta = (ctypes.c_int32 * len(toks))(*toks)
            va = (ctypes.c_float * len(vals))(*vals)
            p.logit_bias_tokens, p.logit_bias_values, p.n_logit_bias = ta, va, len(toks)
            keep += [ta, va]
        if logprobs is not None and logprobs is not False:
            n = 0 if logprobs is True else _int_arg("logprobs", logprobs, 0, 256)
            p.flags |= GENERATE_LOGPROBS
            p.n_logprobs = n
        return keep

    def _piece_of(self, token: int) -> bytes:
        cache = self.model.__dict__.setdefault("_piece_cache", {})
        b = cache.get(token)
        if b is None:
            b = cache[token] = self.model.token_to_piece(token)
        return b

    def _logprob_entry(self, info) -> dict:
        def item(token, logprob):
            b = self._piece_of(token)
            return {"token": b.decode("utf-8", "replace"), "logprob": float(logprob), "bytes": list(b), "id": token}

        entry = item(info.token, info.logprob)
        entry["top_logprobs"] = [item(info.top[k].token, info.top[k].logprob) for k in range(info.n_top)]
        return entry

    def stream(self, prompt: Union[str, bytes, Sequence[int]] = "", **kwargs: Any) -> Iterator[str]:
        """Like generate(), but yields the pieces as they are produced. Closing the iterator early stops
        generation (the tokens generated so far stay in the session); an error or KeyboardInterrupt is re-raised
        from the iterator."""
        if "on_token" in kwargs:
            raise TypeError("stream() does not take on_token")
        q: "queue.Queue" = queue.Queue(maxsize=64)
        stop_flag = threading.Event()
        done = object()
        outcome: list = []

        def on_piece(piece, entries):
            if stop_flag.is_set():
                return
            p = Piece(piece)
            p.logprobs = entries
            q.put(p)

        def on_token(_piece, _token):
            return stop_flag.is_set()

        def run():
            try:
                self.generate(prompt, on_token=on_token, _on_piece=on_piece, **kwargs)
            except BaseException as e:
                outcome.append(e)
            finally:
                q.put(done)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                yield item
        finally:
            stop_flag.set()
            while worker.is_alive():  # drain so the worker never blocks on a full queue
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            worker.join()
        if outcome:
            raise outcome[0]


class _SigintToFlag:
    """While the library generates on the main thread, Ctrl-C sets `flag` instead of raising: raised at the entry of
    a ctypes callback, KeyboardInterrupt would be printed as "Exception ignored" and lost. The callback sees the flag
    and stops generation; generate() then raises KeyboardInterrupt."""

    def __init__(self, flag: threading.Event):
        self.flag = flag
        self.previous: Any = None

    def __enter__(self) -> "_SigintToFlag":
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, lambda *_: self.flag.set())
        return self

    def __exit__(self, *exc: Any) -> bool:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


# ---- Prompt cache, saved sessions, context shift (issue 11; since 0.4) ---------------------------------------------
# One block so that it moves as a whole into the split modules.

GENERATE_CONTEXT_SHIFT = 16

for _name, (_args, _res) in {
    "mistral_session_copy_prefix": ([_P, _P, ctypes.c_uint32], ctypes.c_int32),
    "mistral_session_common_prefix": ([_P, _i32p, _sz, _szp], ctypes.c_int32),
    "mistral_session_tokens": ([_P, _i32p, _sz, _szp], ctypes.c_int32),
    "mistral_session_save_file": ([_P, ctypes.c_char_p], ctypes.c_int32),
    "mistral_session_load_file": ([_P, ctypes.c_char_p], ctypes.c_int32),
    "mistral_session_save_memory": ([_P, ctypes.c_void_p, _sz, _szp], ctypes.c_int32),
    "mistral_session_load_memory": ([_P, ctypes.c_char_p, _sz], ctypes.c_int32),
    "mistral_session_shift": ([_P, ctypes.c_uint32, ctypes.c_uint32], ctypes.c_int32),
}.items():
    _fn = getattr(_lib, _name)
    _fn.argtypes = _args
    _fn.restype = _res


def _session_copy_prefix_from(self: "Session", other: "Session", n: Optional[int] = None) -> None:
    """Makes this session's context the first `n` positions of `other` (all of them when None), copying the KV
    cache instead of recomputing it. Both sessions must be on the same weights; their KV types may differ. When n
    is less than other.n_past, evaluate at least one more token before generating (generate(full_prompt,
    reuse_prefix=True) does so)."""
    if not isinstance(other, Session):
        raise TypeError(f"other must be a mistral.Session, got {type(other).__name__}")
    count = other.n_past if n is None else _int_arg("n", n, *_U32)
    other._enter()
    try:
        _check(self._call("mistral_session_copy_prefix", self.handle, other.handle, count), "mistral_session_copy_prefix")
    finally:
        other._leave()


def _session_common_prefix(self: "Session", ids: Sequence[int]) -> int:
    """How many leading tokens of `ids` the session already holds."""
    n = _sz(0)
    _check(self._call("mistral_session_common_prefix", self.handle, _int_array(ids), len(ids), ctypes.byref(n)),
           "mistral_session_common_prefix")
    return int(n.value)


def _session_tokens(self: "Session") -> List[int]:
    """The token ids of the session's context, n_past of them."""
    n = _sz(0)
    status = self._call("mistral_session_tokens", self.handle, None, 0, ctypes.byref(n))
    if status != ERR_BUFFER_TOO_SMALL:
        _check(status, "mistral_session_tokens")
        return []
    buf = (ctypes.c_int32 * n.value)()
    _check(self._call("mistral_session_tokens", self.handle, buf, n.value, ctypes.byref(n)), "mistral_session_tokens")
    return list(buf[: n.value])


def _session_save(self: "Session", path: PathLike) -> None:
    """Saves tokens, KV cache, next-token logits and RNG state to `path`; load() restores them (also in another
    process) and the session continues with exactly the tokens this one would have produced."""
    _check(self._call("mistral_session_save_file", self.handle, _path_arg("path", path)), "mistral_session_save_file")


def _session_load(self: "Session", path: PathLike) -> None:
    """Replaces the session's state with one saved by save(). Refused (the session unchanged) for another model
    (ERR_INVALID_ARGUMENT), more positions than n_ctx (ERR_CONTEXT_FULL), a truncated or corrupt file (ERR_FORMAT)."""
    _check(self._call("mistral_session_load_file", self.handle, _path_arg("path", path)), "mistral_session_load_file")


def _session_save_bytes(self: "Session") -> bytes:
    """The saved state as bytes (the same format as save())."""
    n = _sz(0)
    status = self._call("mistral_session_save_memory", self.handle, None, 0, ctypes.byref(n))
    if status != ERR_BUFFER_TOO_SMALL:
        _check(status, "mistral_session_save_memory")
    buf = ctypes.create_string_buffer(n.value)
    _check(self._call("mistral_session_save_memory", self.handle, buf, n.value, ctypes.byref(n)),
           "mistral_session_save_memory")
    return buf.raw[: n.value]


def _session_load_bytes(self: "Session", data: bytes) -> None:
    """Restores a state from save_bytes() (or a file's bytes)."""
    data = _bytes_arg("data", data)
    _check(self._call("mistral_session_load_memory", self.handle, data, len(data)), "mistral_session_load_memory")


def _session_shift(self: "Session", n_keep: int, n_discard: Optional[int] = None) -> None:
    """Drops positions n_keep..n_keep+n_discard (None: half of those after n_keep) and moves the rest down, their
    keys re-rotated to the new positions (llama.cpp's context shift)."""
    n_keep = _int_arg("n_keep", n_keep, *_U32)
    if n_discard is None:
        n_discard = max(0, self.n_past - n_keep) // 2
    n_discard = _int_arg("n_discard", n_discard, *_U32)
    _check(self._call("mistral_session_shift", self.handle, n_keep, n_discard), "mistral_session_shift")


Session.copy_prefix_from = _session_copy_prefix_from
Session.common_prefix = _session_common_prefix
Session.tokens = property(_session_tokens, doc="The token ids of the session's context, n_past of them.")
Session.save = _session_save
Session.load = _session_load
Session.save_bytes = _session_save_bytes
Session.load_bytes = _session_load_bytes
Session.shift = _session_shift
