"""python3 -m mistral.server: parse the flags, load the model, run uvicorn."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .settings import ServerSettings


def parser() -> argparse.ArgumentParser:
    """The command line of python3 -m mistral.server (also installed as mistral-server)."""
    p = argparse.ArgumentParser(prog="mistral-server", description="OpenAI-compatible HTTP server for libmistral "
                                "(/v1/chat/completions, /v1/completions, /v1/models, /health)")
    p.add_argument("--model", "-m", required=True, help="GGUF file or model folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 = any free port)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1 requests")
    p.add_argument("--parallel", "-np", type=int, default=4,
                   help="sessions of the shared model, i.e. requests generating at once (default 4)")
    p.add_argument("--n-ctx", "-c", type=int, default=4096, help="context positions per session (default 4096)")
    p.add_argument("--threads", "-t", type=int, default=0, help="threads per session, at most (0 = library default)")
    p.add_argument("--kv-type", default="f16", choices=["f16", "f32", "q8_0"], help="KV cache type (default f16)")
    p.add_argument("--mmproj", default=None, help="vision projector GGUF for image inputs")
    p.add_argument("--image-dir", default=None,
                   help="accept image_url file paths inside this folder (default: only data: URLs)")
    p.add_argument("--chat-template", default=None,
                   help="built-in template (mistral-v7, mistral-v3, chatml) instead of the model's own")
    p.add_argument("--alias", default=None, help="model id reported by /v1/models (default: the file name)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the server until interrupted; returns the exit status."""
    args = parser().parse_args(argv)
    if not 1 <= args.parallel <= 256:
        print("mistral-server: --parallel must be in 1...256", file=sys.stderr)
        return 2
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        print(f"mistral-server: {e.name} is missing: pip install fastapi uvicorn "
              "(or apt install python3-fastapi python3-uvicorn)", file=sys.stderr)
        return 1

    import mistral
    from .app import create_app
    settings = ServerSettings(model=args.model, host=args.host, port=args.port, api_key=args.api_key,
                              parallel=args.parallel, n_ctx=args.n_ctx, threads=args.threads, kv_type=args.kv_type,
                              mmproj=args.mmproj, image_dir=args.image_dir, model_alias=args.alias,
                              chat_template=args.chat_template)
    try:
        app = create_app(settings)
    except mistral.MistralError as e:
        print(f"mistral-server: cannot load {args.model}: {e}", file=sys.stderr)
        return 1
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
