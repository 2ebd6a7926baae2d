#!/usr/bin/env python3
"""An interactive chat over libmistral's Python bindings, on Session.chat: the conversation is rendered with the
model's own template (Mistral V7 for Mistral Small 3.1 and tekken models, ChatML for SmolLM2, ...), exactly as
mistral-common does it, and each turn evaluates only what the session does not already hold.

    python3 examples/chat.py MODEL [--system TEXT] [--image FILE]...
    python3 examples/chat.py models/SmolLM2-135M-Instruct.Q4_1.gguf
    python3 examples/chat.py Mistral-Small-3.1-24B-Instruct-2503 --image photo.jpg

Ctrl-C during an answer stops it (the partial answer stays in the conversation); Ctrl-C or Ctrl-D at the prompt ends.
"""
import argparse
import os
import sys
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import mistral  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description="Chat with a model through libmistral.")
    parser.add_argument("model", help="GGUF file, Hugging Face or Mistral native folder")
    parser.add_argument("--system", help="system prompt")
    parser.add_argument("--image", action="append", default=[], help="image shown with the first turn")
    parser.add_argument("--mmproj", help="mmproj GGUF with the vision encoder of a GGUF model")
    parser.add_argument("--weights", choices=["q8_0", "q4_0"], help="re-quantize float weights while loading")
    parser.add_argument("-c", "--ctx-size", type=int, default=4096)
    parser.add_argument("-n", "--max-tokens", type=int, default=512)
    args = parser.parse_args()

    def progress(fraction: float) -> None:
        if sys.stderr.isatty():
            print(f"\rloading {fraction:4.0%}", end="" if fraction < 1 else "\r\033[K", file=sys.stderr, flush=True)

    model = mistral.Model(args.model, weight_type=args.weights, mmproj_path=args.mmproj, progress=progress)
    session = mistral.Session(model, n_ctx=args.ctx_size)
    messages: List[Dict[str, Any]] = [{"role": "system", "content": args.system}] if args.system else []
    images = list(args.image)
    while True:
        try:
            user = input("> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not user.strip():
            continue
        turn: Dict[str, Any] = {"role": "user", "content": user}
        if images:
            turn["images"], images = images, []
        messages.append(turn)
        pieces: List[str] = []

        def show(piece: str, _token: int) -> None:
            pieces.append(piece)
            print(piece, end="", flush=True)

        try:
            session.chat(messages, max_tokens=args.max_tokens, on_token=show)  # the model's recommended temperature
        except KeyboardInterrupt:
            print(" [stopped]", end="")
        except mistral.MistralError as e:
            print(f"\n[{e}]")
            if e.status == mistral.ERR_CONTEXT_FULL:
                session.reset()
                messages = messages[:1] if args.system else []
                continue
        print()
        messages.append({"role": "assistant", "content": "".join(pieces)})


if __name__ == "__main__":
    sys.exit(main())
