#!/usr/bin/env python3
"""What the prompt cache and saved sessions save: bringing a session to a P-token context by evaluating the prompt
(prefill), by copying another session's positions (mistral_session_copy_prefix), and by loading a saved state from
memory (mistral_session_load_memory), and what a context shift costs against recomputing the kept positions.

    bash Tests/build.sh && python3 bench/prompt_cache_bench.py [--model M] [--prompt 400] [--threads 2] [--reps 5]

The ways alternate (prefill, copy, load, prefill, ...), best of `reps`; ratios are against prefill in the same run.
Shift: a full n_ctx = 2P context shifted by P/2 after 16 kept positions, against re-evaluating the kept tokens.
"""
import argparse
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import mistral  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--prompt", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    m = mistral.Model(a.model)
    ids = [(i * 7919 + 13) % m.n_vocab for i in range(a.prompt)]
    cached = mistral.Session(m, n_ctx=2 * a.prompt, threads=a.threads)
    cached.eval(ids)
    blob = cached.save_bytes()
    s = mistral.Session(m, n_ctx=2 * a.prompt, threads=a.threads)
    ways = {"prefill": lambda: s.eval(ids), "copy_prefix": lambda: s.copy_prefix_from(cached),
            "load_memory": lambda: s.load_bytes(blob)}
    best = {k: float("inf") for k in ways}
    for _ in range(a.reps):
        for name, fn in ways.items():
            s.reset()
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            assert s.tokens == ids
    print(f"model {os.path.basename(a.model)}, {a.prompt} positions, {a.threads} threads, state {len(blob)} bytes")
    for name, t in best.items():
        print(f"  {name:12s} {t * 1000:9.2f} ms   {best['prefill'] / t:8.1f}x faster than prefill")
    full = [(i * 104729 + 7) % m.n_vocab for i in range(2 * a.prompt)]
    keep, discard = 16, a.prompt // 2
    kept = full[:keep] + full[keep + discard:]
    shift_best = recompute_best = float("inf")
    for _ in range(a.reps):
        s.reset()
        s.eval(full)
        t0 = time.perf_counter()
        s.shift(keep, discard)
        shift_best = min(shift_best, time.perf_counter() - t0)
        s.reset()
        t0 = time.perf_counter()
        s.eval(kept)
        recompute_best = min(recompute_best, time.perf_counter() - t0)
    print(f"  shift        {shift_best * 1000:9.2f} ms   recompute {len(kept)} kept positions {recompute_best * 1000:.2f} ms"
          f"   ({recompute_best / shift_best:.1f}x)")


if __name__ == "__main__":
    main()
