#!/usr/bin/env python3
"""An interactive chat loop over libmistral's Python bindings (ChatML, as SmolLM2 uses).

    python3 examples/chat.py models/SmolLM2-135M-Instruct.Q4_1.gguf

Each turn only evaluates the new user message: the session keeps the whole conversation in its KV cache.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import mistral  # noqa: E402


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    model = mistral.Model(sys.argv[1])
    session = mistral.Session(model, n_ctx=4096)
    system = "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n"
    first = True
    while True:
        try:
            user = input("> ")
        except EOFError:
            print()
            return 0
        if not user.strip():
            continue
        prompt = (system if first else "\n") + f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
        first = False
        try:
            for piece in session.stream(prompt, temperature=0.3, max_tokens=512):
                print(piece, end="", flush=True)
        except mistral.MistralError as e:
            print(f"\n[{e}]")
            if e.status == mistral.ERR_CONTEXT_FULL:
                session.reset()
                first = True
        print()


if __name__ == "__main__":
    sys.exit(main())
