#!/usr/bin/env python3
"""Aggregate decode speed of concurrent streams on one model: N threads, each with its own session, generating at
the same time (libmistral batches their steps), against one stream; and 4 concurrent sessions at default settings
against an older libmistral (one worker pool per session, which oversubscribes the cores).

    swift build -c release --product mistral
    python3 bench/batch_bench.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--model /opt/proxy/proxy-Q4_0.gguf]
                                 [--streams 1,2,4,8] [--threads 2] [--tokens 64] [--reps 3]
                                 [--old-lib /work/main/.build/release/libmistral.so --old-bindings /work/main/bindings/python]
                                 [--old-streams 4] [--old-threads 0] [--no-default]

Every measurement runs in its own process (this script's --worker mode): load the model, give each session a short
prompt of its own (not timed), then start every stream at once and time from the start until the last one has
generated --tokens tokens (greedy, EOS ignored); aggregate tok/s = streams x tokens / that time. Runs alternate
(1, 2, 4, 8, 1, 2, ... and new, old, new, old) --reps times; the table shows the best of each. "threads": the
model's pool (--threads) and each session's n_threads; "default": Model() and Session() with no thread settings.
Also printed: the steps the new library's scheduler ran and the most sessions one step held (batch_stats).
With --llamacpp, llama.cpp's llama-batched-bench ($LLAMA_CPP_BUILD/bin, bench/llamacpp-env.sh) runs after each of
this library's rounds on the same file (A, B, A, B): the same streams as parallel sequences of one batch, an
8-token prompt each (-npp 8), --tokens generated (-ntg), --threads; its text-generation tok/s (S_TG, best of the
reps) beside ours, and the ratio.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
HERE = os.path.abspath(__file__)


def worker(a):
    sys.path.insert(0, a.bindings)
    os.environ["MISTRAL_LIBRARY"] = a.lib
    import mistral
    kwargs = {} if a.threads == 0 else {"threads": a.threads}
    try:
        model = mistral.Model(a.model, **kwargs)
    except TypeError:  # an older binding: no shared pool
        model = mistral.Model(a.model)
    sessions = [mistral.Session(model, n_ctx=512, **kwargs) for _ in range(a.streams)]
    vocab = model.n_vocab
    for i, s in enumerate(sessions):
        s.eval([(j * 7919 + i * 104729 + 13) % vocab for j in range(8)])
    if hasattr(model, "batch_stats"):
        model.batch_stats(reset=True)
    start = threading.Barrier(a.streams + 1)
    counts = [0] * a.streams

    def run(i):
        start.wait()
        out = sessions[i].generate([], max_tokens=a.tokens, temperature=0, ignore_eos=True,
                                   on_token=lambda piece, tok: counts.__setitem__(i, counts[i] + 1))
        return out
    threads = [threading.Thread(target=run, args=(i,)) for i in range(a.streams)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    result = {"tps": sum(counts) / elapsed, "tokens": sum(counts)}
    if hasattr(model, "batch_stats"):
        st = model.batch_stats()
        result.update(steps=st.steps, max_sessions=st.max_sessions, step_ms=st.busy_ns / max(1, st.steps) / 1e6,
                      wall_step_ms=elapsed * 1e3 / max(1, st.steps))
    print(json.dumps(result))


def measure(a, lib, bindings, model, streams, threads):
    cmd = [sys.executable, HERE, "--worker", "--lib", lib, "--bindings", bindings, "--model", model,
           "--streams", str(streams), "--threads", str(threads), "--tokens", str(a.tokens)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def llamacpp_round(a, binary, model, streams):
    """llama-batched-bench's S_TG tok/s per parallel-sequence count, one run for all counts."""
    ctx = (8 + a.tokens) * max(streams) + 64
    cmd = [binary, "-m", model, "-c", str(ctx), "-b", "512", "-ub", "512", "-npp", "8", "-ntg", str(a.tokens),
           "-npl", ",".join(str(n) for n in streams), "-t", str(a.threads)]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.path.dirname(binary) + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    if out.returncode != 0:
        raise SystemExit(f"llama-batched-bench failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    tg = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        # | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
        if len(cells) >= 8 and cells[2].isdigit():
            tg[int(cells[2])] = float(cells[7])
    return tg


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true")
    p.add_argument("--model", action="append")
    p.add_argument("--lib", default=os.path.join(ROOT, ".build", "release", "libmistral.so"))
    p.add_argument("--bindings", default=os.path.join(ROOT, "bindings", "python"))
    p.add_argument("--old-lib", default="/work/main/.build/release/libmistral.so")
    p.add_argument("--old-bindings", default="/work/main/bindings/python")
    p.add_argument("--streams", default="1,2,4,8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-default", action="store_true", help="skip the comparison with the older library")
    p.add_argument("--old-streams", type=int, default=4, help="streams of the comparison with the older library")
    p.add_argument("--old-threads", type=int, default=0, help="threads of that comparison (0: default settings)")
    p.add_argument("--llamacpp", nargs="?", const="", default=None, metavar="LLAMA_BATCHED_BENCH",
                   help="also run llama.cpp's llama-batched-bench (default: $LLAMA_CPP_BUILD/bin/llama-batched-bench)")
    a = p.parse_args()
    if a.worker:
        a.streams = int(a.streams)
        a.model = a.model[0]
        return worker(a)
    models = a.model or [os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")]
    streams = [int(s) for s in a.streams.split(",")]
    for model in models:
        if not os.path.exists(model):
            print(f"{model}: missing, skipped")
            continue
        best, peer = {}, {}
        binary = None
        if a.llamacpp is not None:
            binary = a.llamacpp or os.path.join(os.environ.get("LLAMA_CPP_BUILD", "/opt/llama.cpp-build"), "bin",
                                                "llama-batched-bench")
            if not os.access(binary, os.X_OK):
                raise SystemExit(f"{binary}: missing (source bench/llamacpp-env.sh; build_llamacpp)")
        for _ in range(a.reps):
            for n in streams:
                r = measure(a, a.lib, a.bindings, model, n, a.threads)
                if r["tps"] > best.get(n, {"tps": 0})["tps"]:
                    best[n] = r
            if binary:
                for n, tps in llamacpp_round(a, binary, model, streams).items():
                    peer[n] = max(peer.get(n, 0.0), tps)
        print(f"\n{os.path.basename(model)}, {a.threads} threads, {a.tokens} tokens per stream, best of {a.reps}")
        print("| streams | aggregate tok/s | x one stream | steps | most sessions in a step | ms per step (in steps / wall) |")
        print("|---|---|---|---|---|---|")
        for n in streams:
            r = best[n]
            print(f"| {n} | {r['tps']:.1f} | {r['tps'] / best[streams[0]]['tps']:.2f} | {r.get('steps', '')} | "
                  f"{r.get('max_sessions', '')} | {r.get('step_ms', 0):.2f} / {r.get('wall_step_ms', 0):.2f} |")
        if binary:
            print(f"\nagainst llama.cpp's llama-batched-bench on the same file ({a.threads} threads, 8-token prompts, "
                  f"{a.tokens} tokens per sequence, best of {a.reps}, interleaved)")
            print("| streams | this library tok/s | llama.cpp S_TG tok/s | ratio |\n|---|---|---|---|")
            for n in streams:
                if n in peer:
                    print(f"| {n} | {best[n]['tps']:.1f} | {peer[n]:.1f} | {best[n]['tps'] / peer[n]:.2f} |")
        if a.no_default or not os.path.exists(a.old_lib):
            continue
        new, old = {"tps": 0}, {"tps": 0}
        for _ in range(a.reps):
            r = measure(a, a.lib, a.bindings, model, a.old_streams, a.old_threads)
            new = r if r["tps"] > new["tps"] else new
            r = measure(a, a.old_lib, a.old_bindings, model, a.old_streams, a.old_threads)
            old = r if r["tps"] > old["tps"] else old
        setting = "default settings" if a.old_threads == 0 else f"{a.old_threads} threads"
        print(f"\n{a.old_streams} concurrent sessions at {setting} ({os.cpu_count()} CPUs), best of {a.reps}, interleaved")
        print(f"| library | aggregate tok/s |\n|---|---|\n| this branch | {new['tps']:.1f} |\n"
              f"| {a.old_lib} | {old['tps']:.1f} |\n| ratio | {new['tps'] / old['tps']:.2f} |")


if __name__ == "__main__":
    main()
