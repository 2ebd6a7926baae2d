#!/usr/bin/env python3
"""One image through Mistral Small 3.1's shapes end to end: decode + preprocess, the Pixtral encoder (real size,
random weights: bench/vision_vs_llamacpp.py's mmproj), then the image-token prefill on the bench proxy's text
decoder (real shapes, 2 layers), each stage timed, and the prefill scaled to the real model's 40 layers.

    python3 bench/vision_vs_llamacpp.py --sides 512 --runs 1   # writes /tmp/mistral-vision-bench/mmproj-...
    python3 bench/vision_end_to_end.py [--side 1024] [--model /opt/proxy/proxy-Q4_0.gguf] [--compute bf16]

Prefill scaling: the proxy's 2 layers are timed with its output projection and embedding, which the real model has
once too; 40 layers = 20 x the 2-layer prefill (an upper bound: it scales the once-only parts as well).
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import mistral  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--model", default="/opt/proxy/proxy-Q4_0.gguf")
    p.add_argument("--mmproj", default="/tmp/mistral-vision-bench/mmproj-real-size-f16.gguf")
    p.add_argument("--compute", default="bf16", choices=["f32", "bf16"])
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    model = mistral.Model(a.model, mmproj_path=a.mmproj, threads=a.threads, vision_compute=a.compute)
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(a.side, a.side, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    rows = model.image_embed(pixels)           # preprocess (resize, normalise) + encoder + merger + projector
    t1 = time.perf_counter()
    n = rows.shape[0]
    session = mistral.Session(model, n_ctx=n + 64, threads=a.threads, n_batch=512)
    t2 = time.perf_counter()
    session.eval_embd(rows)                     # the image rows' prefill through the text decoder
    t3 = time.perf_counter()
    enc, pre = t1 - t0, t3 - t2
    print(f"{a.side}x{a.side}, {a.compute} vision compute, {a.threads} threads: {n} image rows")
    print(f"  preprocess + encode: {enc:.2f} s")
    print(f"  image-row prefill, proxy (2 layers): {pre:.2f} s ({n / pre:.1f} rows/s); scaled to 40 layers: "
          f"{pre * 20:.1f} s")
    print(f"  end to end: {enc + pre:.2f} s (2 layers); {enc + 20 * pre:.1f} s scaled to 40 layers")


if __name__ == "__main__":
    main()
