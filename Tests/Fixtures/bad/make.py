#!/usr/bin/env python3
"""Writes the hand-made regression inputs of issue 9 (the fuzz campaign's crash files join them, same naming):
<fuzz target>--<what>.<ext>, replayed by Tests/python/test_hostile.py::test_bad_fixture_files through both the
fuzz harness (MistralFuzz TARGET FILE) and the Python API. Folder inputs use the harness's part separator."""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "..", "fuzz"), os.path.join(HERE, "..", "..", "python")]
import minimodels as mini  # noqa: E402
import hostile_files as H  # noqa: E402

SEP = b"\n--8<--\n"


def gguf_override(key, t, v):
    p = os.path.join(HERE, ".mini.gguf")
    with open(p, "wb") as f:
        f.write(mini.gguf())
    try:
        return H.gguf_with(p, {key: (t, v)})
    finally:
        os.remove(p)


def hf(edit):
    cfg = json.loads(mini.hf_config())
    edit(cfg)
    return json.dumps(cfg).encode() + SEP + mini.safetensors(mini.HF_NAMES)


def native(edit):
    p = json.loads(mini.native_params())
    edit(p)
    return json.dumps(p).encode() + SEP + mini.safetensors(mini.NATIVE_NAMES)


def tekken(edit):
    t = json.loads(mini.tekken())
    edit(t["config"])
    return json.dumps(t).encode()


VISION = json.load(open(os.path.join(HERE, "..", "tiny-s", "hf", "config.json")))["vision_config"]
FILES = {
    "gguf--context-length-2-31.gguf": gguf_override("llama.context_length", 10, 1 << 31),
    "gguf--context-length-negative.gguf": gguf_override("llama.context_length", 11, -80),
    "gguf--rope-theta-inf.gguf": gguf_override("llama.rope.freq_base", 6, float("inf")),
    "gguf--rms-eps-nan.gguf": gguf_override("llama.attention.layer_norm_rms_epsilon", 6, float("nan")),
    "hf--max-position-2-31.bin": hf(lambda c: c.update(max_position_embeddings=1 << 31)),
    "hf--max-position-negative.bin": hf(lambda c: c.update(max_position_embeddings=-5)),
    "hf--image-token-index-2-31.bin": hf(lambda c: c.update(vision_config=VISION, image_token_index=1 << 31)),
    "native--max-seq-len-2-31.bin": native(lambda p: p.update(max_seq_len=1 << 31)),
    "native--rope-theta-huge.bin": native(lambda p: p.update(rope_theta=1e400)),
    "tekken--special-tokens-1e9.json": tekken(lambda c: c.update(default_num_special_tokens=10 ** 9,
                                                                   default_vocab_size=10 ** 9 + 261)),
    "tekken--special-tokens-2e7.json": tekken(lambda c: c.update(default_num_special_tokens=2 * 10 ** 7,
                                                                   default_vocab_size=2 * 10 ** 7 + 261)),
    "image--jpeg-scan-bomb.jpg": H.scan_bomb(2000),
    "image--jpeg-truncated-eoi.jpg": H.truncated_with_eoi(),
}

if __name__ == "__main__":
    for name, data in FILES.items():
        if name.startswith("native--rope"):
            data = data.replace(b"Infinity", b"1e400")
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")
