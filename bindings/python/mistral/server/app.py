"""The FastAPI application: OpenAI's chat completions, completions and models endpoints over a SessionPool.

Each request's generation runs on a worker thread (ctypes releases the GIL) on its own session; streamed pieces go
to the event loop through an asyncio queue. A request whose client went away is cancelled: the token callback sees
the request's cancel flag and stops the library's generation."""
from __future__ import annotations

import asyncio
import hmac
import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Dict, List, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import mistral

from .pool import SessionPool, Slot
from .protocol import (BadRequest, check_tools, convert_messages, forced_call, forced_call_schema, tagged_calls,
                       tool_choice_of, TOOL_TEMPLATES)
from .schemas import ChatRequest, CompletionRequest
from .settings import ServerSettings

FINISH = {"eog": "stop", "stop_string": "stop", "max_tokens": "length", "context_full": "length",
          "callback": "stop", "none": "stop"}
# library statuses that mean the request (not the server) is wrong
CLIENT_STATUSES = {mistral.ERR_INVALID_ARGUMENT, mistral.ERR_FORMAT, mistral.ERR_UNSUPPORTED, mistral.ERR_IO,
                   mistral.ERR_CONTEXT_FULL}


def error_body(message: str, kind: str = "invalid_request_error", param: Optional[str] = None,
               code: Optional[str] = None) -> Dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class Stats:
    """Counters behind GET /stats (the tests read how far a cancelled generation got)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.cancelled = 0
        self.last_cancelled_tokens: Optional[int] = None
        self.tokens_generated = 0
        self.prompt_tokens = 0
        self.cached_tokens = 0

    def snapshot(self) -> Dict[str, Any]:
        with self.lock:
            return {"requests": self.requests, "cancelled": self.cancelled,
                    "last_cancelled_generated_tokens": self.last_cancelled_tokens,
                    "generated_tokens": self.tokens_generated, "prompt_tokens": self.prompt_tokens,
                    "cached_prompt_tokens": self.cached_tokens}


class Job:
    """One generation: run on a worker thread; `emit` gets (piece, logprob entries) as they come."""

    def __init__(self, prompt: List[int], run: Callable[["Job"], Any]):
        self.slot: Optional[Slot] = None  # set by acquire()
        self.cached = 0  # prompt positions the session already held
        self.prompt = prompt
        self.run = run
        self.cancel = threading.Event()
        self.emit: Optional[Callable[[str, Any], None]] = None
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.finish = "stop"
        self.n_generated = 0

    def on_token(self, _piece: str, _token: int) -> bool:
        return self.cancel.is_set()

    def on_piece(self, piece: str, entries: Any) -> None:
        if self.emit is not None and not self.cancel.is_set():
            self.emit(piece, entries)

    def __call__(self) -> None:
        try:
            self.result = self.run(self)
        except mistral.MistralError as e:
            if e.status == mistral.ERR_CONTEXT_FULL and hasattr(e, "text"):
                self.result, self.finish = e.text, "length"
            else:
                self.error = e
        except (TypeError, ValueError) as e:  # the binding's argument checks: the request's values are wrong
            self.error = BadRequest(str(e))
        except BaseException as e:  # reported as a 500 without a stack trace
            self.error = e
        finally:
            s = self.slot.session  # type: ignore[union-attr]  (set before the job runs)
            self.n_generated = s.last_n_generated
            if self.error is None and self.finish != "length":
                self.finish = FINISH.get(s.last_stop_reason or "none", "stop")


class ApiKeyMiddleware:
    """401 for /v1 requests without "Authorization: Bearer <key>". Plain ASGI (not BaseHTTPMiddleware, which would
    hide the client's disconnect from the streaming endpoints)."""

    def __init__(self, app: Any, key: str):
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = JSONResponse(error_body("invalid or missing API key", code="invalid_api_key"),
                                        status_code=401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: ServerSettings, model: Optional[mistral.Model] = None) -> FastAPI:
    """The application; loads settings.model unless `model` is given."""
    if model is None:
        model = mistral.Model(settings.model, mmproj_path=settings.mmproj)
    model_id = settings.model_alias or os.path.basename(os.path.normpath(settings.model)) or "model"
    pool = SessionPool(model, settings.parallel, settings.n_ctx, settings.threads, settings.kv_type)
    executor = ThreadPoolExecutor(max_workers=settings.parallel, thread_name_prefix="mistral-gen")
    stats = Stats()
    pending: set = set()  # tasks settling cancelled jobs (kept referenced until done)
    template = settings.chat_template or model.chat_template
    app = FastAPI(title="libmistral OpenAI-compatible server", docs_url=None, redoc_url=None)
    app.state.pool, app.state.stats, app.state.model = pool, stats, model

    # ---- errors: OpenAI's shape, 400 for what the client sent, never a stack trace -----------------------------
    @app.exception_handler(RequestValidationError)
    async def on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        msg = f"{'.'.join(loc) + ': ' if loc else ''}{first.get('msg', 'invalid request')}"
        return JSONResponse(error_body(msg, param=".".join(loc) or None), status_code=400)

    @app.exception_handler(BadRequest)
    async def on_bad_request(_request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse(error_body(exc.message, param=exc.param, code=exc.code), status_code=400)

    @app.exception_handler(mistral.MistralError)
    async def on_library_error(_request: Request, exc: mistral.MistralError) -> JSONResponse:
        if exc.status in CLIENT_STATUSES:
            return JSONResponse(error_body(exc.message), status_code=400)
        return JSONResponse(error_body(f"generation failed: {exc.message}", "server_error"), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def on_any(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(f"internal error ({type(exc).__name__})", "server_error"), status_code=500)

    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, key=settings.api_key)

    # ---- plain endpoints ----------------------------------------------------------------------------------------
    @app.get("/health")
    async def health() -> Dict[str, Any]:
        return {"status": "ok", "slots_idle": len(pool.idle), "slots_busy": pool.busy}

    @app.get("/stats")
    async def get_stats() -> Dict[str, Any]:
        return stats.snapshot()

    @app.get("/v1/models")
    async def models() -> Dict[str, Any]:
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "libmistral",
                                            "meta": {"arch": model.arch, "n_ctx": settings.n_ctx,
                                                     "n_ctx_train": model.n_ctx_train,
                                                     "chat_template": template}}]}

    # ---- running a job ------------------------------------------------------------------------------------------
    def sampling(req: Any) -> Dict[str, Any]:
        kw: Dict[str, Any] = {"top_p": req.top_p, "stop": req.stop}
        if req.temperature is not None:
            kw["temperature"] = req.temperature
        n = req.max_completion_tokens if getattr(req, "max_completion_tokens", None) is not None else req.max_tokens
        kw["max_tokens"] = n if n is not None else settings.max_tokens_default
        if req.seed is not None:
            kw["seed"] = req.seed & ((1 << 64) - 1)
        if req.ignore_eos:
            kw["ignore_eos"] = True
        for extra in ("top_k", "min_p", "repeat_penalty"):
            if getattr(req, extra) is not None:
                kw[extra] = getattr(req, extra)
        if req.logit_bias:
            try:
                kw["logit_bias"] = {int(k): float(v) for k, v in req.logit_bias.items()}
            except ValueError:
                raise BadRequest("logit_bias keys must be token ids", param="logit_bias") from None
        return kw

    def check_length(prompt: List[int], max_tokens: int) -> None:
        if len(prompt) >= settings.n_ctx:
            raise BadRequest(f"the prompt is {len(prompt)} tokens; the context holds {settings.n_ctx} "
                             "(prompt too long)", param="messages", code="context_length_exceeded")

    def start(prompt: List[int], run: Callable[[Job], Any]) -> Job:
        check_length(prompt, 0)
        return Job(prompt, run)

    async def acquire(job: Job) -> None:
        """Gives the job the idle session holding the longest prefix of its prompt (waits for one). Done where the
        job runs (for a stream: inside the response body), so a response never sent holds no session."""
        job.slot = await pool.acquire(job.prompt)
        job.cached = job.slot.cached_for(job.prompt)
        with stats.lock:
            stats.requests += 1
            stats.prompt_tokens += len(job.prompt)
            stats.cached_tokens += job.cached

    async def finish(job: Job) -> None:
        with stats.lock:
            stats.tokens_generated += job.n_generated
            if job.cancel.is_set():
                stats.cancelled += 1
                stats.last_cancelled_tokens = job.n_generated
        await pool.release(job.slot, job.prompt if job.error is None or
                           isinstance(job.error, mistral.MistralError) else None)

    def settle(job: Job, fut: Any) -> None:
        """Returns a cancelled job's session to the pool once its thread has stopped. A task of its own: inside the
        cancelled request (an anyio cancel scope) every await would be cancelled again."""
        async def wait_then_finish() -> None:
            await asyncio.wrap_future(fut) if not isinstance(fut, asyncio.Future) else await fut
            await finish(job)
        pending.add(asyncio.get_running_loop().create_task(wait_then_finish()))
        for t in list(pending):
            if t.done():
                pending.discard(t)

    async def run_to_end(request: Request, job: Job) -> None:
        """Runs the job; cancels it when the client disconnects."""
        await acquire(job)
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(executor, job)
        try:
            while True:
                done, _ = await asyncio.wait({fut}, timeout=0.25)
                if done:
                    break
                if await request.is_disconnected():
                    job.cancel.set()
        except BaseException:
            job.cancel.set()
            settle(job, fut)
            raise
        await finish(job)
        if job.error is not None:
            raise job.error

    async def stream_job(request: Request, job: Job, chunks: Any) -> AsyncIterator[str]:
        """SSE lines of a job: chunks.piece(text, entries) per piece, chunks.end(job) at the end, then [DONE]."""
        await acquire(job)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        job.emit = lambda piece, entries: loop.call_soon_threadsafe(queue.put_nowait, (piece, entries))
        fut = loop.run_in_executor(executor, job)
        fut.add_done_callback(lambda _f: loop.call_soon_threadsafe(queue.put_nowait, None))
        finished = False
        try:
            for line in chunks.begin():
                yield line
            checked = time.monotonic()
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=0.25)
                except asyncio.TimeoutError:
                    item = False
                if time.monotonic() - checked > 0.2:  # pieces may come faster than any timeout: check by the clock
                    checked = time.monotonic()
                    if await request.is_disconnected():
                        job.cancel.set()
                if item is False:
                    continue
                if item is None:
                    break
                for line in chunks.piece(*item):
                    yield line
            await fut
            finished = True
            await finish(job)
            if job.error is not None:
                err = job.error
                status = getattr(err, "status", None)
                client_side = status in CLIENT_STATUSES or isinstance(err, BadRequest)
                kind = "invalid_request_error" if client_side else "server_error"
                msg = getattr(err, "message", None) or f"internal error ({type(err).__name__})"
                yield f"data: {json.dumps(error_body(msg, kind))}\n\n"
            else:
                for line in chunks.end(job):
                    yield line
            yield "data: [DONE]\n\n"
        finally:  # the client went away (the generator is cancelled or closed) or the job ended
            if not finished:
                job.cancel.set()
                settle(job, fut)

    def sse(obj: Dict[str, Any]) -> str:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    def usage(job: Job) -> Dict[str, Any]:
        return {"prompt_tokens": len(job.prompt), "completion_tokens": job.n_generated,
                "total_tokens": len(job.prompt) + job.n_generated,
                "prompt_tokens_details": {"cached_tokens": job.cached}}

    def openai_logprobs(entries: Optional[List[Dict[str, Any]]]) -> Optional[Dict[str, Any]]:
        if entries is None:
            return None
        def clean(e: Dict[str, Any]) -> Dict[str, Any]:
            return {k: v for k, v in e.items() if k != "id"}
        return {"content": [dict(clean(e), top_logprobs=[clean(t) for t in e.get("top_logprobs", [])])
                            for e in entries]}

    # ---- /v1/chat/completions -----------------------------------------------------------------------------------
    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest, request: Request) -> Any:
        if req.n not in (None, 1):
            raise BadRequest("only n=1 is supported", param="n")
        if not req.messages:
            raise BadRequest("messages must not be empty", param="messages")
        tools = check_tools(req.tools)
        mode, forced_name = tool_choice_of(req.tool_choice, tools)
        # tools stay in the prompt under tool_choice "none" (the prefix others share); only calls are not parsed
        messages, lib_tools = convert_messages(req.messages, tools, template, settings.image_dir)
        offered = tools if mode != "none" else None
        kw = sampling(req)
        if req.logprobs:
            kw["logprobs"] = req.top_logprobs or True
        elif req.top_logprobs:
            raise BadRequest("top_logprobs needs logprobs: true", param="top_logprobs")
        if mode == "required":
            kw["json_schema"] = forced_call_schema(offered or [], forced_name)
        elif req.response_format is not None:
            kw["json_schema"] = response_schema(req.response_format)
        loop = asyncio.get_running_loop()
        try:
            prompt = await loop.run_in_executor(None, lambda: model.chat_tokenize(
                messages, tools=lib_tools, template=settings.chat_template))
        except TypeError as e:
            raise BadRequest(str(e), param="messages") from None
        buffered = bool(offered)  # tool calls are known only once the text is complete

        def run(job: Job) -> Any:
            return job.slot.session.chat(messages, tools=lib_tools, template=settings.chat_template,
                                         on_token=job.on_token, _on_piece=job.on_piece,
                                         **kw)

        def reply_of(job: Job) -> Dict[str, Any]:
            text = str(job.result or "")
            calls = None
            if mode == "required":
                try:
                    calls = forced_call(text)
                except (ValueError, KeyError, TypeError):
                    calls = None
                content: Optional[str] = None if calls else text
            elif offered and template in TOOL_TEMPLATES:
                calls = getattr(job.result, "tool_calls", None)
                content = text
            elif offered:
                content, calls = tagged_calls(text)
            else:
                content = text
            msg: Dict[str, Any] = {"role": "assistant", "content": content}
            if calls:
                msg["tool_calls"] = calls
            return msg

        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        job = start(prompt, run)
        if not req.stream:
            await run_to_end(request, job)
            msg = reply_of(job)
            finish_reason = "tool_calls" if msg.get("tool_calls") else job.finish
            return {"id": rid, "object": "chat.completion", "created": created, "model": model_id,
                    "choices": [{"index": 0, "message": msg, "finish_reason": finish_reason,
                                 "logprobs": openai_logprobs(getattr(job.result, "logprobs", None) and
                                                             job.result.logprobs["content"])}],
                    "usage": usage(job), "system_fingerprint": None}

        def chunk(delta: Dict[str, Any], finish_reason: Optional[str] = None, logprobs: Any = None) -> str:
            return sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model_id,
                        "system_fingerprint": None,
                        "choices": [{"index": 0, "delta": delta, "logprobs": logprobs,
                                     "finish_reason": finish_reason}]})

        include_usage = bool((req.stream_options or {}).get("include_usage"))

        class Chunks:
            def begin(self) -> List[str]:
                return [chunk({"role": "assistant", "content": ""})]

            def piece(self, text: str, entries: Any) -> List[str]:
                if buffered:
                    return []
                return [chunk({"content": text}, logprobs=openai_logprobs(entries) if entries is not None else None)]

            def end(self, job: Job) -> List[str]:
                out = []
                if buffered:
                    msg = reply_of(job)
                    delta: Dict[str, Any] = {}
                    if msg["content"]:
                        delta["content"] = msg["content"]
                    if msg.get("tool_calls"):
                        delta["tool_calls"] = [dict(c, index=k) for k, c in enumerate(msg["tool_calls"])]
                    if delta:
                        out.append(chunk(delta))
                    fr = "tool_calls" if msg.get("tool_calls") else job.finish
                else:
                    fr = job.finish
                out.append(chunk({}, fr))
                if include_usage:
                    out.append(sse({"id": rid, "object": "chat.completion.chunk", "created": created,
                                    "model": model_id, "choices": [], "usage": usage(job)}))
                return out

        return StreamingResponse(stream_job(request, job, Chunks()), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def response_schema(fmt: Dict[str, Any]) -> Any:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "text":
            return None
        if kind == "json_object":
            return {"type": "object"}
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise BadRequest("response_format.json_schema.schema must be a JSON schema object",
                                 param="response_format")
            return schema
        raise BadRequest("response_format.type must be text, json_object or json_schema", param="response_format")

    # ---- /v1/completions ----------------------------------------------------------------------------------------
    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request) -> Any:
        if req.n not in (None, 1):
            raise BadRequest("only n=1 is supported", param="n")
        prompt_in = req.prompt
        if isinstance(prompt_in, list):
            if len(prompt_in) == 1 and isinstance(prompt_in[0], str):
                prompt_in = prompt_in[0]
            elif not all(isinstance(t, int) for t in prompt_in):
                raise BadRequest("prompt must be a string, a list of one string, or a list of token ids",
                                 param="prompt")
        if isinstance(prompt_in, str):
            prompt = model.tokenize(prompt_in, add_bos=model.add_bos, special=True)
        else:
            prompt = list(prompt_in)
        if not prompt:
            raise BadRequest("the prompt is empty", param="prompt")
        kw = sampling(req)
        if req.logprobs is not None:
            kw["logprobs"] = req.logprobs or True
        if req.response_format is not None:
            kw["json_schema"] = response_schema(req.response_format)

        def run(job: Job) -> Any:
            return job.slot.session.generate(prompt, reuse_prefix=True, on_token=job.on_token,
                                             _on_piece=job.on_piece, **kw)

        def legacy_logprobs(entries: Optional[List[Dict[str, Any]]]) -> Optional[Dict[str, Any]]:
            if entries is None:
                return None
            return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
                    "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries]}

        rid = f"cmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        echo = prompt_in if (req.echo and isinstance(prompt_in, str)) else ""
        job = start(prompt, run)

        def body(text: str, finish_reason: Optional[str], lp: Any) -> Dict[str, Any]:
            return {"id": rid, "object": "text_completion", "created": created, "model": model_id,
                    "choices": [{"index": 0, "text": text, "logprobs": lp, "finish_reason": finish_reason}]}

        if not req.stream:
            await run_to_end(request, job)
            text = str(job.result or "")
            lp = legacy_logprobs(getattr(job.result, "logprobs", None) and job.result.logprobs["content"])
            return dict(body(echo + text, job.finish, lp), usage=usage(job))

        include_usage = bool((req.stream_options or {}).get("include_usage"))

        class Chunks:
            def begin(self) -> List[str]:
                return [sse(body(echo, None, None))] if echo else []

            def piece(self, text: str, entries: Any) -> List[str]:
                return [sse(body(text, None, legacy_logprobs(entries)))]

            def end(self, job: Job) -> List[str]:
                out = [sse(body("", job.finish, None))]
                if include_usage:
                    out.append(sse({"id": rid, "object": "text_completion", "created": created, "model": model_id,
                                    "choices": [], "usage": usage(job)}))
                return out

        return StreamingResponse(stream_job(request, job, Chunks()), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.on_event("shutdown")
    async def shutdown() -> None:
        executor.shutdown(wait=True)

    return app
