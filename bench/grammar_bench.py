#!/usr/bin/env python3
"""Decode tokens/s with and without a JSON-schema token mask: what constrained decoding costs per step.

    bash Tests/build.sh && python3 bench/grammar_bench.py [--models M1,M2] [--tg 128] [--threads 2] [--reps 3]

Default models: SmolLM2-135M Q4_1 (49,152 ids) and, when present, the Mistral Small 3.1 proxy
/opt/proxy/proxy-Q4_0.gguf (the 131,072-id Tekken vocabulary). For each model the same prompt is evaluated once,
then `tg` tokens are decoded (temperature 0.8, fixed seed) without a mask and with the mask of a schema whose output
can run long (an array of records), alternating, best of `reps`. The first constrained run starts with cold caches
(token trie built, masks not yet cached) and is reported on its own; "overhead" compares the best warm constrained
run with the best unconstrained one: 1 - constrained / unconstrained tok/s.
"""
import argparse
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import mistral  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "items": {"type": "array", "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "price": {"type": "number"}, "in_stock": {"type": "boolean"},
                           "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["name", "price", "in_stock", "tags"]}},
    },
    "required": ["title", "items"],
}
PROMPT = "A JSON catalogue of the products of a small bakery, with names, prices and tags:\n"


def decode_rate(session, prompt_ids, tg, schema):
    session.reset()
    session.eval(prompt_ids)
    kw = {"json_schema": schema} if schema else {}
    t0 = time.perf_counter()
    session.generate([], max_tokens=tg, temperature=0.8, seed=1234, ignore_eos=True, **kw)
    dt = time.perf_counter() - t0
    n = session.last_n_generated
    return n / dt if dt > 0 else 0.0, n


def bench(path, tg, threads, reps):
    model = mistral.Model(path)
    session = mistral.Session(model, n_ctx=max(512, tg + 128), threads=threads)
    ids = model.tokenize(PROMPT, add_bos=model.add_bos)
    t0 = time.perf_counter()
    cold, n_cold = decode_rate(session, ids, tg, SCHEMA)
    cold_s = time.perf_counter() - t0
    free = warm = 0.0
    n_free = n_warm = 0
    for _ in range(reps):
        r, n = decode_rate(session, ids, tg, None)
        if r > free:
            free, n_free = r, n
        r, n = decode_rate(session, ids, tg, SCHEMA)
        if r > warm:
            warm, n_warm = r, n
    session.close()
    vocab = model.n_vocab
    model.close()
    return {"model": os.path.basename(path), "vocab": vocab, "free": free, "n_free": n_free, "warm": warm,
            "n_warm": n_warm, "cold": cold, "n_cold": n_cold, "cold_s": cold_s}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = [os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"), "/opt/proxy/proxy-Q4_0.gguf"]
    ap.add_argument("--models", default=",".join(default))
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    rows = []
    for path in a.models.split(","):
        if not os.path.exists(path):
            print(f"skipping {path}: not found", file=sys.stderr)
            continue
        rows.append(bench(path, a.tg, a.threads, a.reps))
    print(f"threads {a.threads}, tg {a.tg}, best of {a.reps}; tokens/s (tokens decoded)")
    print("| model | vocab | no mask | json_schema mask | overhead | first constrained run (cold) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        overhead = 1 - r["warm"] / r["free"] if r["free"] > 0 else float("nan")
        print(f"| {r['model']} | {r['vocab']} | {r['free']:.1f} ({r['n_free']}) | {r['warm']:.1f} ({r['n_warm']}) | "
              f"{overhead * 100:.1f} % | {r['cold']:.1f} ({r['n_cold']}, {r['cold_s']:.2f} s with the trie build) |")


if __name__ == "__main__":
    main()
