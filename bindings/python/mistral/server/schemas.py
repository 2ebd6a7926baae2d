"""Request bodies (pydantic): what FastAPI checks before a handler runs; a mismatch is answered with HTTP 400.
Unknown fields are accepted and ignored, as OpenAI-compatible servers do."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from pydantic import BaseModel, Field


class _Sampling(BaseModel):
    model: Optional[str] = None
    max_tokens: Optional[int] = Field(None, ge=0, le=(1 << 31) - 1)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: Optional[int] = None
    stop: Optional[Union[str, List[str]]] = None
    stream: bool = False
    stream_options: Optional[Dict[str, Any]] = None
    n: Optional[int] = None
    logit_bias: Optional[Dict[str, float]] = None
    response_format: Optional[Dict[str, Any]] = None
    user: Optional[str] = None
    # llama.cpp / llama-cpp-python extras
    top_k: Optional[int] = Field(None, ge=0, le=(1 << 31) - 1)
    min_p: Optional[float] = Field(None, ge=0, le=1)
    repeat_penalty: Optional[float] = Field(None, gt=0)
    ignore_eos: bool = False


class ChatRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: List[Any]
    tools: Optional[List[Any]] = None
    tool_choice: Optional[Union[str, Dict[str, Any]]] = None
    max_completion_tokens: Optional[int] = Field(None, ge=0, le=(1 << 31) - 1)
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = Field(None, ge=0, le=20)


class CompletionRequest(_Sampling):
    """POST /v1/completions."""

    prompt: Union[str, List[Any]]
    logprobs: Optional[int] = Field(None, ge=0, le=20)
    echo: bool = False
