#!/usr/bin/env python3
"""Load generator for the OpenAI-compatible server: N concurrent streaming clients x M requests each against
127.0.0.1, bounded in count (--requests) and time (--max-seconds). Prints aggregate decode tok/s, time to first
token p50/p95 and per-stream tok/s. Starts the server itself with --model (else talks to --url).

    python3 bench/serve_bench.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf --clients 1 8 --requests 2
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import httpx

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOPICS = ["the sea", "a lighthouse", "winter", "a train", "mountains", "a library", "the moon", "a garden",
          "rain", "a market", "a bridge", "the desert", "an old clock", "a forest", "a city at night", "a river"]


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def one_request(url, key, i, max_tokens, deadline):
    """Streams one chat completion; returns (ttft s, tokens, decode seconds after the first token) or None."""
    body = {"model": "x", "stream": True, "max_tokens": max_tokens, "temperature": 0.7, "seed": i + 1,
            "ignore_eos": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"Write a short poem about {TOPICS[i % len(TOPICS)]}."}]}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    t0 = time.perf_counter()
    first = None
    tokens = 0
    timeout = max(1.0, deadline - time.time())
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=headers, timeout=timeout) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ch = json.loads(line[6:])
            if ch.get("usage"):
                tokens = ch["usage"]["completion_tokens"]
            elif ch["choices"] and ch["choices"][0]["delta"].get("content") and first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    if first is None:
        return None
    return first - t0, tokens, end - first


def run_level(url, key, clients, requests, max_tokens, max_seconds):
    deadline = time.time() + max_seconds
    results, lock = [], threading.Lock()

    def client(c):
        for m in range(requests):
            if time.time() > deadline:
                return
            r = one_request(url, key, c * requests + m, max_tokens, deadline)
            if r:
                with lock:
                    results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttft = [r[0] for r in results]
    total = sum(r[1] for r in results)
    per_stream = [(r[1] - 1) / r[2] for r in results if r[2] > 0 and r[1] > 1]
    return {"clients": clients, "requests": len(results), "tokens": total, "wall_s": round(wall, 2),
            "aggregate_tok_s": round(total / wall, 1) if wall > 0 else 0.0,
            "ttft_p50_ms": round(1000 * pct(ttft, 0.5), 1), "ttft_p95_ms": round(1000 * pct(ttft, 0.95), 1),
            "per_stream_tok_s_median": round(statistics.median(per_stream), 1) if per_stream else 0.0}


def start_server(args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    cmd = [sys.executable, "-m", "mistral.server", "--model", args.model, "--port", str(port),
           "--parallel", str(args.parallel or max(args.clients)), "--n-ctx", str(args.n_ctx),
           "--threads", str(args.threads), "--log-level", "warning"]
    if args.chat_template:
        cmd += ["--chat-template", args.chat_template]
    proc = subprocess.Popen(cmd, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            sys.exit("the server exited")
        time.sleep(0.2)
    proc.kill()
    sys.exit("the server did not come up")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="start a server on this model (127.0.0.1, a free port)")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="a running server (when --model is not given)")
    p.add_argument("--api-key", default=None)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrency levels to run, in order")
    p.add_argument("--requests", type=int, default=2, help="requests per client (M)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--max-seconds", type=float, default=60, help="time bound per concurrency level")
    p.add_argument("--parallel", type=int, default=0, help="server sessions (default: the largest --clients)")
    p.add_argument("--threads", type=int, default=0, help="server threads per session (0 = library default)")
    p.add_argument("--n-ctx", type=int, default=1024)
    p.add_argument("--chat-template", default=None, help="for models whose template is not recognised (the proxy)")
    args = p.parse_args()
    if any(not 1 <= c <= 64 for c in args.clients) or not 1 <= args.requests <= 100:
        sys.exit("--clients must be in 1...64 and --requests in 1...100")
    proc = None
    url = args.url
    if args.model:
        proc, url = start_server(args)
    try:
        one_request(url, args.api_key, 0, 4, time.time() + 60)  # warm up
        rows = [run_level(url, args.api_key, c, args.requests, args.max_tokens, args.max_seconds)
                for c in args.clients]
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"{'clients':>7} {'reqs':>4} {'tokens':>6} {'wall s':>7} {'agg tok/s':>9} {'TTFT p50 ms':>11} "
          f"{'TTFT p95 ms':>11} {'stream tok/s':>12}")
    for r in rows:
        print(f"{r['clients']:>7} {r['requests']:>4} {r['tokens']:>6} {r['wall_s']:>7} {r['aggregate_tok_s']:>9} "
              f"{r['ttft_p50_ms']:>11} {r['ttft_p95_ms']:>11} {r['per_stream_tok_s_median']:>12}")
    if len(rows) > 1 and rows[0]["aggregate_tok_s"] > 0:
        print(f"aggregate speed-up {rows[-1]['clients']} vs {rows[0]['clients']} clients: "
              f"{rows[-1]['aggregate_tok_s'] / rows[0]['aggregate_tok_s']:.2f}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
