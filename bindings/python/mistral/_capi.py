"""The C API as ctypes sees it: status codes and flags, the structs of mistral.h, the library search and loading, and
every function's signature. Nothing here checks arguments or owns handles (see _args.py and the classes)."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Iterable

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
                # since 0.4 (shared thread pool, batching)
                ("n_threads", ctypes.c_int32), ("max_batch_sessions", ctypes.c_int32), ("vision_compute", ctypes.c_int32)]


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
GENERATE_CONTEXT_SHIFT = 16
VISION_COMPUTE = {None: 0, "f32": 1, "bf16": 2}


class _BatchStats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("steps", ctypes.c_uint64), ("batched_steps", ctypes.c_uint64),
                ("max_sessions", ctypes.c_uint64), ("max_rows", ctypes.c_uint64), ("rows", ctypes.c_uint64),
                ("busy_ns", ctypes.c_uint64)]


KV_TYPES = {"f16": 0, "f32": 1, "q8_0": 2}


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
    # since 0.4: shared thread pool and batching
    "mistral_model_n_threads": ([_P], ctypes.c_int32),
    "mistral_model_batch_stats": ([_P, ctypes.POINTER(_BatchStats), ctypes.c_int32], ctypes.c_int32),
    # since 0.4: prompt cache, saved sessions, context shift
    "mistral_session_copy_prefix": ([_P, _P, ctypes.c_uint32], ctypes.c_int32),
    "mistral_session_common_prefix": ([_P, _i32p, _sz, _szp], ctypes.c_int32),
    "mistral_session_tokens": ([_P, _i32p, _sz, _szp], ctypes.c_int32),
    "mistral_session_save_file": ([_P, ctypes.c_char_p], ctypes.c_int32),
    "mistral_session_load_file": ([_P, ctypes.c_char_p], ctypes.c_int32),
    "mistral_session_save_memory": ([_P, ctypes.c_void_p, _sz, _szp], ctypes.c_int32),
    "mistral_session_load_memory": ([_P, ctypes.c_char_p, _sz], ctypes.c_int32),
    "mistral_session_shift": ([_P, ctypes.c_uint32, ctypes.c_uint32], ctypes.c_int32),
}
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
