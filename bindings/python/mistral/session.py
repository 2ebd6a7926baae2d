"""Session: the KV cache and sampler of one conversation, and generation on it."""
from __future__ import annotations

import ctypes
import math
import queue
import signal
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ._args import (PathLike, _Handle, _I32, _U32, _bytes_arg, _cstr_arg, _float_arg, _int_arg, _int_array, _path_arg,
                    _session_params)
from ._capi import (ERR_BUFFER_TOO_SMALL, ERR_CANCELLED, ERR_FORMAT, ERR_INVALID_ARGUMENT, GENERATE_CONTEXT_SHIFT,
                    GENERATE_IGNORE_EOS, GENERATE_LOGPROBS,
                    GENERATE_REUSE_PREFIX, GENERATE_SPECIAL, KV_TYPES, OK, STOP_REASONS, MistralError, _GenerateParams,
                    _TOKEN_CALLBACK, _TOKEN_INFO_CALLBACK, _check, _lib)
from .chat import _chat_array, _chat_request, _needs_json, _take_tool_calls
from .grammar import _schema_text
from .model import Model
from .results import ChatReply, Completion, Piece

class Session(_Handle):
    """KV cache + sampler state for one conversation. Use from one thread at a time: a call while another one on the
    same session is running (from another thread, or from inside on_token) raises MistralError(ERR_INVALID_ARGUMENT,
    "session is busy")."""

    _kind = "session"
    _free = staticmethod(lambda h: _lib.mistral_session_free(h))

    KV_TYPES = KV_TYPES

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
        if context_shift:
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

    # ---- prompt cache, saved sessions, context shift (since 0.4) ----------------------------------------------

    def copy_prefix_from(self, other: "Session", n: Optional[int] = None) -> None:
        """Makes this session's context the first `n` positions of `other` (all of them when None), copying the KV
        cache instead of recomputing it. Both sessions must be on the same weights; their KV types may differ. When n
        is less than other.n_past, evaluate at least one more token before generating (generate(full_prompt,
        reuse_prefix=True) does so)."""
        if not isinstance(other, Session):
            raise TypeError(f"other must be a mistral.Session, got {type(other).__name__}")
        count = other.n_past if n is None else _int_arg("n", n, *_U32)
        other._enter()
        try:
            _check(self._call("mistral_session_copy_prefix", self.handle, other.handle, count),
                   "mistral_session_copy_prefix")
        finally:
            other._leave()

    def common_prefix(self, ids: Sequence[int]) -> int:
        """How many leading tokens of `ids` the session already holds."""
        n = ctypes.c_size_t(0)
        _check(self._call("mistral_session_common_prefix", self.handle, _int_array(ids), len(ids), ctypes.byref(n)),
               "mistral_session_common_prefix")
        return int(n.value)

    @property
    def tokens(self) -> List[int]:
        """The token ids of the session's context, n_past of them."""
        n = ctypes.c_size_t(0)
        status = self._call("mistral_session_tokens", self.handle, None, 0, ctypes.byref(n))
        if status != ERR_BUFFER_TOO_SMALL:
            _check(status, "mistral_session_tokens")
            return []
        buf = (ctypes.c_int32 * n.value)()
        _check(self._call("mistral_session_tokens", self.handle, buf, n.value, ctypes.byref(n)),
               "mistral_session_tokens")
        return list(buf[: n.value])

    def save(self, path: PathLike) -> None:
        """Saves tokens, KV cache, next-token logits and RNG state to `path`; load() restores them (also in another
        process) and the session continues with exactly the tokens this one would have produced."""
        _check(self._call("mistral_session_save_file", self.handle, _path_arg("path", path)),
               "mistral_session_save_file")

    def load(self, path: PathLike) -> None:
        """Replaces the session's state with one saved by save(). Refused (the session unchanged) for another model
        (ERR_INVALID_ARGUMENT), more positions than n_ctx (ERR_CONTEXT_FULL), a truncated or corrupt file
        (ERR_FORMAT)."""
        _check(self._call("mistral_session_load_file", self.handle, _path_arg("path", path)),
               "mistral_session_load_file")

    def save_bytes(self) -> bytes:
        """The saved state as bytes (the same format as save())."""
        n = ctypes.c_size_t(0)
        status = self._call("mistral_session_save_memory", self.handle, None, 0, ctypes.byref(n))
        if status != ERR_BUFFER_TOO_SMALL:
            _check(status, "mistral_session_save_memory")
        buf = ctypes.create_string_buffer(n.value)
        _check(self._call("mistral_session_save_memory", self.handle, buf, n.value, ctypes.byref(n)),
               "mistral_session_save_memory")
        return buf.raw[: n.value]

    def load_bytes(self, data: bytes) -> None:
        """Restores a state from save_bytes() (or a file's bytes)."""
        data = _bytes_arg("data", data)
        _check(self._call("mistral_session_load_memory", self.handle, data, len(data)), "mistral_session_load_memory")

    def shift(self, n_keep: int, n_discard: Optional[int] = None) -> None:
        """Drops positions n_keep..n_keep+n_discard (None: half of those after n_keep) and moves the rest down, their
        keys re-rotated to the new positions (llama.cpp's context shift)."""
        n_keep = _int_arg("n_keep", n_keep, *_U32)
        if n_discard is None:
            n_discard = max(0, self.n_past - n_keep) // 2
        n_discard = _int_arg("n_discard", n_discard, *_U32)
        _check(self._call("mistral_session_shift", self.handle, n_keep, n_discard), "mistral_session_shift")


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
