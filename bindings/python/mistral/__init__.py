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

Layout (as llama-cpp-python keeps llama_cpp.py, llama.py and server/ apart):
  _capi.py     the C API for ctypes: status codes, structs, library loading, function signatures
  _args.py     argument checks before ctypes, and the owned-handle base class
  model.py     Model (weights + tokenizer);  session.py  Session (KV cache, sampler, generate/chat/stream)
  image.py     Image;  chat.py  chat messages and tool-call parsing;  grammar.py  JSON schema -> GBNF
  results.py   Completion, Piece, ChatReply;  estimate.py  memory estimates;  log.py  the log callback
  server/      the OpenAI-compatible HTTP server (python3 -m mistral.server; needs fastapi and uvicorn)
Everything public is re-exported here: `import mistral` is all a program needs.
"""
from __future__ import annotations

import ctypes  # noqa: F401  (tests and callers reach ctypes through the module, as before the split)

from ._capi import (CHAT_ADD_GENERATION_PROMPT, DETOKENIZE_SPECIAL, ERR_BUFFER_TOO_SMALL, ERR_CANCELLED,  # noqa: F401
                    ERR_CONTEXT_FULL, ERR_FORMAT, ERR_INTERNAL, ERR_INVALID_ARGUMENT, ERR_IO, ERR_OUT_OF_MEMORY,
                    ERR_UNSUPPORTED, GENERATE_CONTEXT_SHIFT, GENERATE_IGNORE_EOS, GENERATE_LOGPROBS, GENERATE_REUSE_PREFIX, GENERATE_SPECIAL,
                    KV_TYPES, LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_WARN, OK, STOP_REASONS, TOKENIZE_ADD_BOS,
                    TOKENIZE_PARSE_SPECIAL, WEIGHT_TYPES, MistralError, _ChatMessage, _GenerateParams,
                    _LOG_CALLBACK, _MemoryEstimate, _ModelParams, _PROGRESS_CALLBACK, _SessionParams,
                    _TOKEN_CALLBACK, _TOKEN_INFO_CALLBACK, _TokenInfo, _TokenLogprob, _check, _lib, library_path,
                    version)
# the private helpers too, so code written against the single-file module (e.g. a block of extra Session methods
# in a branch made before the split) still finds them here
from ._args import (PathLike, _Handle, _I32, _U32, _bytes_arg, _cstr_arg, _float_arg, _int_arg,  # noqa: F401
                    _int_array, _model_params, _path_arg, _session_params, _text_arg)
from ._capi import _P, _i32p, _signatures, _sz, _szp  # noqa: F401
from .chat import _chat_array, _chat_request, _needs_json, _take_tool_calls  # noqa: F401
from .grammar import _schema_text  # noqa: F401
from .session import _SigintToFlag  # noqa: F401
from .chat import parse_tool_calls
from .estimate import MemoryEstimate, estimate
from .grammar import json_schema_to_grammar
from .image import Image
from .log import _log_keepalive, set_log_callback  # noqa: F401
from .model import Model
from .results import BatchStats, ChatReply, Completion, Piece
from .session import Session

__all__ = ["Model", "Session", "Image", "MistralError", "ChatReply", "Completion", "Piece", "BatchStats", "parse_tool_calls",
           "json_schema_to_grammar", "MemoryEstimate", "estimate", "set_log_callback", "version", "library_path"]
