#!/usr/bin/env python3
"""Prompt processing (pp) and decode (tg) tokens/s of libmistral next to llama.cpp, same file, same run.

    pip install llama-cpp-python        # builds llama.cpp from source
    bash Tests/build.sh && python3 bench/bench.py [--model M] [--pp 512] [--tg 128] [--threads 1,2] [--reps 3]

Both engines process `pp` prompt tokens in one batch, then decode `tg` tokens one at a time (no sampling cost:
fixed token ids), best of `reps`. Prints a table with the ratio libmistral / llama.cpp.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
_quiet = None


def bench_mistral(model, threads, pp, tg, reps):
    cli = os.path.join(ROOT, ".build", "release", "mistral-cli")
    out = subprocess.run([cli, "bench", "-m", model, "-t", str(threads), "--pp", str(pp), "--tg", str(tg),
                          "--reps", str(reps)], capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    return r["pp_tps"], r["tg_tps"]


def bench_llamacpp(model, threads, pp, tg, reps):
    """llama.cpp through its C API (llama_decode on llama_batch_get_one), so no Python-side work is timed."""
    import llama_cpp as L
    global _quiet
    _quiet = L.llama_log_callback(lambda level, text, user_data: None)  # keep a reference: llama.cpp calls it later
    L.llama_log_set(_quiet, None)
    L.llama_backend_init()
    m = L.llama_model_load_from_file(model.encode(), L.llama_model_default_params())
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(m))
    cp = L.llama_context_default_params()
    cp.n_ctx = pp + tg + 8
    cp.n_batch = cp.n_ubatch = max(pp, 1)
    cp.n_threads = cp.n_threads_batch = threads
    ctx = L.llama_init_from_model(m, cp)
    mem = L.llama_get_memory(ctx)
    prompt = (L.llama_token * max(pp, 1))(*[(i * 7919 + 13) % n_vocab for i in range(pp)])
    one = (L.llama_token * 1)(1)
    best_pp = best_tg = 0.0
    for _ in range(reps):
        L.llama_memory_clear(mem, True)
        t0 = time.perf_counter()
        L.llama_decode(ctx, L.llama_batch_get_one(prompt, pp))
        L.llama_synchronize(ctx)
        best_pp = max(best_pp, pp / (time.perf_counter() - t0))
        L.llama_memory_clear(mem, True)
        one[0] = prompt[0]
        L.llama_decode(ctx, L.llama_batch_get_one(one, 1))
        token = 1
        t0 = time.perf_counter()
        for i in range(tg):
            token = (token * 31 + i) % n_vocab
            one[0] = token
            L.llama_decode(ctx, L.llama_batch_get_one(one, 1))
            L.llama_synchronize(ctx)
        best_tg = max(best_tg, tg / (time.perf_counter() - t0))
    L.llama_free(ctx)
    L.llama_model_free(m)
    return best_pp, best_tg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    rows = []
    for t in [int(x) for x in a.threads.split(",")]:
        m_pp, m_tg = bench_mistral(a.model, t, a.pp, a.tg, a.reps)
        l_pp, l_tg = bench_llamacpp(a.model, t, a.pp, a.tg, a.reps)
        rows.append((t, m_pp, l_pp, m_tg, l_tg))
    print(f"model: {os.path.basename(a.model)}  pp={a.pp} tg={a.tg} (tokens/s, best of {a.reps})")
    print(f"{'threads':>7} | {'pp mistral':>10} {'pp llama.cpp':>12} {'ratio':>6} | "
          f"{'tg mistral':>10} {'tg llama.cpp':>12} {'ratio':>6}")
    for t, m_pp, l_pp, m_tg, l_tg in rows:
        print(f"{t:>7} | {m_pp:>10.1f} {l_pp:>12.1f} {m_pp / l_pp:>6.2f} | {m_tg:>10.1f} {l_tg:>12.1f} {m_tg / l_tg:>6.2f}")


if __name__ == "__main__":
    sys.exit(main())
