#!/usr/bin/env python3
"""llama.cpp's tokenization of text with code points that its Unicode tables (15.1) do not know but the Swift
runtime's (17.0) do, for the GGUF pre-tokenizers (`tekken` on tiny-s's GGUF, `smollm` on SmolLM2).

Writes references.json next to this script; the tests read only that. Needs llama.cpp 0c1e57098 through
llama-cpp-python 0.3.36 (`source bench/llamacpp-env.sh; build_llamacpp`, then run this with that environment).
"""
import json
import os

import llama_cpp

assert llama_cpp.__version__ == "0.3.36", llama_cpp.__version__
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
MODELS = {
    "tiny-s-f32.gguf": os.path.join(ROOT, "Tests", "Fixtures", "tiny-s", "gguf", "tiny-s-f32.gguf"),
    "SmolLM2-135M-Instruct.Q4_1.gguf": os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# new in Unicode 16.0: U+1C89 (Lu), U+10D4A (Lo), U+16D40 (Lm), U+1E5D0 (Lo), U+10D40 (Nd); 17.0: U+11DE0 (Nd),
# U+323B0 (CJK Ext. J, Lo), U+16EA0 (Lu), U+11B60 (Mn); 15.1: U+2FFC (So), U+31350 (Lo, 15.0)
STRINGS = [
    "ab\u1c89cd", " \U00010d4a\U00010d4btest", "x\U00016d40y", "\U0001e5d0abc def", "12\U00010d40 34",
    " \U00011de0", "\U000323b0's", "a\U00011de0b", "Word\U00011de5 next", "\U00016ea0\U00016eb9 text",
    "e\u0301\U00011b60x", "\u2ffc\U00031350 ok", "Hello \u1c89\u1c8a!", "\U000323b0\U000323b1 \U000323b2",
    # where the class decides the split: a letter takes no "'s" with it, an "other" character does; a digit is
    # isolated by smollm and stands alone in tekken
    "\u1c89's", "\U00010d4a's", "\U000323b0's", " \U00010d40", "x \U00010d40y", " \U00011de0", "\U00031350's",
]


def main():
    out = {"reference": f"llama.cpp 0c1e57098 (llama-cpp-python {llama_cpp.__version__}), "
                        "Llama(vocab_only=True).tokenize(text, add_bos=False, special=False)", "models": {}}
    for name, path in MODELS.items():
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        out["models"][name] = [{"text": s, "ids": llm.tokenize(s.encode("utf-8"), add_bos=False, special=False)}
                               for s in STRINGS]
    with open(os.path.join(HERE, "references.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
