"""An OpenAI-compatible HTTP server over the binding, as llama-cpp-python's llama_cpp.server:

    python3 -m mistral.server --model models/SmolLM2-135M-Instruct.Q4_1.gguf --port 8080

Endpoints: POST /v1/chat/completions, POST /v1/completions (both stream as server-sent events with stream=true),
GET /v1/models, GET /health, GET /stats (request and cancellation counters). One Model is shared by a pool of
`--parallel` sessions; each request generates on its own thread and session (so the library can batch concurrent
decode steps), and a new request gets the idle session that already holds the longest prefix of its prompt.

Needs fastapi and uvicorn (pip install "libmistral[server]", or Debian's python3-fastapi and python3-uvicorn); the
modules are imported only when the server is made, so `import mistral` never needs them.
"""
from __future__ import annotations

from typing import Any

__all__ = ["ServerSettings", "create_app"]

from .settings import ServerSettings


def create_app(settings: ServerSettings, model: Any = None) -> Any:
    """The FastAPI application serving `settings.model` (or the already loaded mistral.Model `model`)."""
    from .app import create_app as make
    return make(settings, model)
