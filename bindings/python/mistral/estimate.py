"""Memory a model and a session will need, from the files' headers alone."""
from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

from ._args import PathLike, _model_params, _path_arg, _session_params
from ._capi import _MemoryEstimate, _check, _lib

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
