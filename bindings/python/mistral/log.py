"""Routing the library's diagnostics to a Python function."""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional

from ._args import _int_arg
from ._capi import _LOG_CALLBACK, LOG_WARN, _lib

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
