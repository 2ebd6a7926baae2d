"""Model: weights + tokenizer, shared by sessions."""
from __future__ import annotations

import ctypes
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ._args import PathLike, _Handle, _I32, _U32, _cstr_arg, _int_arg, _int_array, _model_params, _path_arg, _text_arg
from ._capi import (CHAT_ADD_GENERATION_PROMPT, DETOKENIZE_SPECIAL, ERR_BUFFER_TOO_SMALL, OK, TOKENIZE_ADD_BOS,
                    TOKENIZE_PARSE_SPECIAL, VISION_COMPUTE, _PROGRESS_CALLBACK, _BatchStats, _check, _lib)
from .chat import _chat_array, _chat_request, _needs_json, _take_tool_calls
from .image import Image
from .results import BatchStats


class Model(_Handle):
    """Weights + tokenizer. Immutable after loading; may be shared by sessions on several threads."""

    _kind = "model"
    _free = staticmethod(lambda h: _lib.mistral_model_free(h))

    def __init__(self, path: PathLike, vocab_only: bool = False, tokenizer_path: Optional[PathLike] = None,
                 weight_type: Optional[str] = None, mmproj_path: Optional[PathLike] = None,
                 progress: Optional[Callable[[float], Optional[bool]]] = None, threads: int = 0,
                 max_batch_sessions: int = 16, vision_compute: Optional[str] = None):
        """path: a GGUF file, a Hugging Face or Mistral native folder, or a tekken.json (tokenizer only).
        weight_type: None (as stored), "q8_0" or "q4_0" to re-quantize float weights while loading.
        threads: the worker pool all sessions of this model share (0: physical cores); max_batch_sessions: how
        many sessions used concurrently from different threads are evaluated together per step (1: no batching).
        vision_compute: how the vision encoder computes, "f32" (the default: transformers' outputs to ~1e-5) or
        "bf16" (AVX-512 BF16 where the CPU has it, about twice as fast, each output within 2^-8 * sum|x*w|).
        progress(fraction): told how far the load is (0 first, 1 last, increasing in between); returning True
        cancels it with MistralError(ERR_CANCELLED), and an exception raised in it (KeyboardInterrupt included)
        cancels it and is re-raised here."""
        self._handle = None
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable or None")
        params = _model_params(vocab_only, tokenizer_path, weight_type, mmproj_path)
        params.n_threads = _int_arg("threads", threads, 0, 512)
        params.max_batch_sessions = _int_arg("max_batch_sessions", max_batch_sessions, 1, 256)
        if vision_compute not in VISION_COMPUTE:
            raise ValueError(f"vision_compute must be None, 'f32' or 'bf16', got {vision_compute!r}")
        params.vision_compute = VISION_COMPUTE[vision_compute]
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

    def batch_stats(self, reset: bool = False) -> BatchStats:
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
