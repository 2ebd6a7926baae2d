"""The server's options (command line flags of python3 -m mistral.server)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class ServerSettings:
    """What the server serves and how: one model, `parallel` sessions of `n_ctx` positions each."""

    model: str = ""
    host: str = "127.0.0.1"          # loopback unless told otherwise
    port: int = 8080
    api_key: Optional[str] = None    # when set, every /v1 request needs "Authorization: Bearer <key>"
    parallel: int = 4                # sessions of the shared model = requests generating at once
    n_ctx: int = 4096                # positions per session
    threads: int = 0                 # per session, at most this many (0 = the library's default)
    kv_type: str = "f16"
    image_dir: Optional[str] = None  # image_url file paths are read only inside this folder (None: refused)
    mmproj: Optional[str] = None     # vision projector for GGUF models whose vision encoder is a separate file
    chat_template: Optional[str] = None  # a built-in template name, for models whose own is not recognised
    model_alias: Optional[str] = None  # the id /v1/models reports (default: the file name)
    max_tokens_default: int = 0      # a request without max_tokens: 0 = until the end of the turn or the context
