"""Argument checks done before anything reaches ctypes (which would wrap or truncate silently), and the owned-handle
base class of Model, Session and Image."""
from __future__ import annotations

import ctypes
import math
import os
from typing import Any, Optional, Sequence, Union

from ._capi import ERR_INVALID_ARGUMENT, KV_TYPES, WEIGHT_TYPES, MistralError, _ModelParams, _SessionParams, _lib

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
    if kv_type not in KV_TYPES:
        raise ValueError(f"kv_type must be one of {sorted(KV_TYPES)}, got {kv_type!r}")
    params = _SessionParams()
    _lib.mistral_session_params_init(ctypes.byref(params))
    params.n_ctx = _int_arg("n_ctx", n_ctx, *_U32)
    params.n_threads = _int_arg("threads", threads, 0, 512)
    if seed is not None:
        params.seed = _int_arg("seed", seed, 0, (1 << 64) - 1)
    if n_batch is not None:
        params.n_batch = _int_arg("n_batch", n_batch, 1, 8192)
    params.kv_type = KV_TYPES[kv_type]
    return params
