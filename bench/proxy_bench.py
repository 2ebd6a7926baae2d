#!/usr/bin/env python3
"""libmistral next to llama.cpp on a real-shape proxy of Mistral Small 3.1's text decoder (bench/make_proxy.py:
hidden 5120, 32x128 heads, 8 KV heads, FFN 32768, vocab 131072, 2 layers, random weights), same files, same run.

    swift build -c release --product mistral-cli
    python3 bench/proxy_bench.py [--files Q4_K_M,Q4_0,Q8_0] [--model other.gguf]... [--threads 1,2]
                                 [--tests pp256,pp512,tg32,tg32@d4096] [--reps 3] [--json out.json]

llama.cpp is found (or built with build_llamacpp) through bench/llamacpp-env.sh, and the proxy files are made in
--proxy-dir (/opt/proxy) when missing. Tests: ppN = N prompt tokens in one batch from an empty cache; tgN = N decode
steps of one token (after one untimed token); tgN@dD = N decode steps after D tokens already in the cache (prefilled
in batches of 512, not timed; mistral-cli bench --depth D). Every measurement runs in its own process (libmistral: `mistral-cli bench ... --reps 1`;
llama.cpp: this script's --worker mode, the C API through llama_cpp as bench/bench.py: llama_decode on
llama_batch_get_one, n_batch = n_ubatch = 512, f16 KV), alternating libmistral, llama.cpp, ... `reps` times; the
table shows the best tok/s of each and the peak RSS (ru_maxrss of that process, max over reps; mmap'd weight pages
count once touched; the llama.cpp worker includes ~40 MiB of Python + numpy).

The decode ceiling is the memory read bandwidth (bench/read_bandwidth.c, compiled here with cc -O3 -march=native: a
uint64 sum over 2 GiB, 1 process for 1 thread, 2 processes at once for 2 threads; numpy's float64 sum, used when no C
compiler is found, is compute-bound on some CPUs and reads low) divided by the bytes of weights read per token (all
tensors but token_embd).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
HERE = os.path.abspath(__file__)
ENV_SH = os.path.join(ROOT, "bench", "llamacpp-env.sh")
TEST_RE = re.compile(r"^(pp|tg)(\d+)(?:@d(\d+))?$")
VOCAB_SEED = lambda i, n: (i * 7919 + 13) % n  # noqa: E731  (the token ids mistral-cli bench uses)


# ---------------------------------------------------------------------------------------------------- workers

def worker_llamacpp(a):
    """One measurement with llama.cpp; prints {"tps": ...}."""
    import llama_cpp as L
    quiet = L.llama_log_callback(lambda level, text, user_data: None)
    L.llama_log_set(quiet, None)
    L.llama_backend_init()
    m = L.llama_model_load_from_file(a.model.encode(), L.llama_model_default_params())
    if not m:
        sys.exit(f"llama.cpp could not load {a.model}")
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(m))
    kind, n, depth = a.kind, a.n, a.depth
    cp = L.llama_context_default_params()
    cp.n_ctx = depth + n + 8
    cp.n_batch = cp.n_ubatch = 512
    cp.n_threads = cp.n_threads_batch = a.threads
    ctx = L.llama_init_from_model(m, cp)
    if not ctx:
        sys.exit("llama_init_from_model failed")
    mem = L.llama_get_memory(ctx)

    def chunks(count):  # ids (i*7919+13) % vocab, in batches of 512
        out = []
        for s in range(0, count, 512):
            k = min(512, count - s)
            out.append(((L.llama_token * k)(*[VOCAB_SEED(s + i, n_vocab) for i in range(k)]), k))
        return out

    def decode_many(batches):
        for arr, k in batches:
            rc = L.llama_decode(ctx, L.llama_batch_get_one(arr, k))
            if rc != 0:
                sys.exit(f"llama_decode: {rc}")
        L.llama_synchronize(ctx)

    L.llama_memory_clear(mem, True)
    if kind == "pp":
        batches = chunks(n)
        t0 = time.perf_counter()
        decode_many(batches)
        tps = n / (time.perf_counter() - t0)
    else:
        one = (L.llama_token * 1)(VOCAB_SEED(0, n_vocab))
        if depth:  # as mistral-cli bench --depth: the depth tokens, then the timed steps
            decode_many(chunks(depth))
        else:  # one untimed token first
            L.llama_decode(ctx, L.llama_batch_get_one(one, 1))
            L.llama_synchronize(ctx)
        token = 1
        t0 = time.perf_counter()
        for i in range(n):
            token = (token * 31 + i) % n_vocab
            one[0] = token
            L.llama_decode(ctx, L.llama_batch_get_one(one, 1))
            L.llama_synchronize(ctx)
        tps = n / (time.perf_counter() - t0)
    L.llama_free(ctx)
    L.llama_model_free(m)
    print(json.dumps({"tps": tps}))


def worker_bandwidth(a):
    """Sum a 2 GiB float64 array (1 thread; float64, as float32's pairwise sum is compute-bound here); with --sync,
    waits for a line on stdin after allocating."""
    import numpy as np
    x = np.ones(a.gib << 27, dtype=np.float64)  # 2^27 float64 = 1 GiB
    x.sum()
    if a.sync:
        print("ready", flush=True)
        sys.stdin.readline()
    times = []
    for _ in range(a.passes):
        t0 = time.perf_counter()
        x.sum()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"bytes": x.nbytes, "best_gbs": x.nbytes / min(times) / 1e9,
                      "mean_gbs": x.nbytes * len(times) / sum(times) / 1e9}), flush=True)


# ---------------------------------------------------------------------------------------------------- driver

def llamacpp_env():
    """The environment bench/llamacpp-env.sh sets up (building llama.cpp when it is missing)."""
    def read():
        out = subprocess.run(["bash", "-c", f'source "{ENV_SH}" >/dev/null 2>&1; env -0'],
                             capture_output=True, check=True).stdout
        return dict(kv.split("=", 1) for kv in out.decode().split("\0") if "=" in kv)
    env = read()
    lib = os.path.join(env["LLAMA_CPP_LIB_PATH"], "libllama.so")
    quant = os.path.join(env["LLAMA_CPP_BUILD"], "bin", "llama-quantize")
    if not (os.path.exists(lib) and os.path.exists(quant) and os.path.isdir(os.path.join(env["LLAMA_CPP_SDIST"], "llama_cpp"))):
        print(f"llama.cpp missing under {env['LLAMA_CPP_BUILD']}: running build_llamacpp (10-20 min)", flush=True)
        subprocess.run(["bash", "-c", f'source "{ENV_SH}" && build_llamacpp'], check=True)
        env = read()
    return env


def run_measured(cmd, env=None, stdin_data=None):
    """Runs cmd; returns (stdout text, peak RSS in MiB of that process)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        o, e = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{e[-2000:]}")
    return o, ru.ru_maxrss / 1024.0


def measure_mistral(cli, model, threads, kind, n, depth):
    cmd = [cli, "bench", "-m", model, "-t", str(threads), "--reps", "1"]
    cmd += ["--pp", str(n), "--tg", "0"] if kind == "pp" else ["--pp", "0", "--tg", str(n)]
    if depth:
        cmd += ["--depth", str(depth), "-c", str(depth + n + 8)]
    out, rss = run_measured(cmd)
    r = json.loads(out.strip().splitlines()[-1])
    if depth and r.get("depth") != depth:
        raise NotImplementedError("mistral-cli bench has no --depth (its JSON lacks \"depth\")")
    measure_mistral.info = {k: r[k] for k in ("kernels", "kv") if k in r}
    return (r["pp_tps"] if kind == "pp" else r["tg_tps"]), rss


def measure_llamacpp(env, model, threads, kind, n, depth):
    cmd = [sys.executable, HERE, "--worker", "llamacpp", "--model-path", model, "--wthreads", str(threads),
           "--kind", kind, "--n", str(n), "--depth", str(depth)]
    out, rss = run_measured(cmd, env=env)
    return json.loads(out.strip().splitlines()[-1])["tps"], rss


def bandwidth_probe():
    """The read-bandwidth program (bench/read_bandwidth.c) built for this CPU, or None without a C compiler."""
    src = os.path.join(ROOT, "bench", "read_bandwidth.c")
    exe = os.path.join(tempfile.gettempdir(), f"mistral-read-bandwidth-{os.getuid()}")
    cc = os.environ.get("CC", "cc")
    if subprocess.run([cc, "-O3", "-march=native", "-o", exe, src], capture_output=True).returncode != 0:
        return None
    return exe


def bandwidth(nproc, probe):
    """Aggregate GB/s of nproc single-threaded sums over 2 GiB each, started together."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [probe, "2", "5", "--sync"] if probe else [sys.executable, HERE, "--worker", "bandwidth", "--sync"]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(nproc)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    res = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.wait()
    return sum(r["mean_gbs"] for r in res)  # mean over the passes: the processes overlap throughout


def weight_bytes(path):
    """Bytes of the tensors a decode step reads: all but the token embedding (a row lookup)."""
    from gguf import GGUFReader
    r = GGUFReader(path)
    return sum(int(t.n_bytes) for t in r.tensors if t.name != "token_embd.weight")


def cpu_line():
    model, flags = "?", []
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    keep = sorted(f for f in flags if f.startswith("avx") or f in ("fma", "f16c", "amx_int8", "amx_bf16"))
    return f"CPU: {model}, {os.cpu_count()} logical CPUs; flags: {' '.join(keep)}"


def ensure_proxy(env, proxy_dir, types):
    missing = [t for t in types if not os.path.exists(os.path.join(proxy_dir, f"proxy-{t}.gguf"))]
    if missing:
        print(f"making the proxy files {missing} in {proxy_dir}", flush=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "make_proxy.py"), "--out", proxy_dir,
                        "--quantize", ",".join(missing)], check=True, env=env)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", default="Q4_K_M,Q4_0,Q8_0", help="proxy types (proxy-<TYPE>.gguf); '' for none")
    ap.add_argument("--model", action="append", default=[], help="another GGUF to bench too (e.g. SmolLM2)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tests", default="pp256,pp512,tg32,tg32@d4096")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--proxy-dir", default="/opt/proxy")
    ap.add_argument("--cli", default=os.path.join(ROOT, ".build", "release", "mistral-cli"))
    ap.add_argument("--no-bandwidth", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    # worker mode (internal)
    ap.add_argument("--worker", choices=["llamacpp", "bandwidth"], help=argparse.SUPPRESS)
    ap.add_argument("--model-path", help=argparse.SUPPRESS)
    ap.add_argument("--wthreads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--depth", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--sync", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gib", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--passes", type=int, default=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker == "llamacpp":
        a.model, a.threads = a.model_path, a.wthreads
        return worker_llamacpp(a)
    if a.worker == "bandwidth":
        return worker_bandwidth(a)

    tests = []
    for t in [x for x in a.tests.split(",") if x]:
        mt = TEST_RE.match(t)
        if not mt:
            sys.exit(f"bad test '{t}' (ppN, tgN or tgN@dD)")
        tests.append((t, mt.group(1), int(mt.group(2)), int(mt.group(3) or 0)))
    threads = [int(x) for x in a.threads.split(",") if x]
    if not os.path.exists(a.cli):
        sys.exit(f"{a.cli} missing: swift build -c release --product mistral-cli (or --cli PATH)")
    env = llamacpp_env()
    types = [t for t in a.files.split(",") if t]
    ensure_proxy(env, a.proxy_dir, types)
    files = [os.path.join(a.proxy_dir, f"proxy-{t}.gguf") for t in types] + a.model

    print(cpu_line())
    bw = {}
    if not a.no_bandwidth:
        probe = bandwidth_probe()
        bw[1] = bandwidth(1, probe)
        how = "bench/read_bandwidth.c" if probe else "numpy float64 sum: no C compiler, may read low"
        line = f"memory read bandwidth ({how}, 2 GiB per process): 1 process {bw[1]:.1f} GB/s"
        if max(threads) > 1:
            bw[2] = bandwidth(2, probe)
            line += f"; 2 processes at once {bw[2]:.1f} GB/s total"
        print(line, flush=True)

    rows = []
    for path in files:
        wbytes = weight_bytes(path)
        name = os.path.basename(path)
        print(f"{name}: {os.path.getsize(path) / 2**30:.2f} GiB, weights read per token {wbytes / 2**30:.3f} GiB",
              flush=True)
        for t in threads:
            for label, kind, n, depth in tests:
                best = {"lm": 0.0, "lc": 0.0}
                rss = {"lm": 0.0, "lc": 0.0}
                errs = {}
                for _ in range(a.reps):
                    for eng, fn, arg in (("lm", measure_mistral, a.cli), ("lc", measure_llamacpp, env)):
                        if eng in errs:
                            continue
                        try:
                            tps, r = fn(arg, path, t, kind, n, depth)
                        except (RuntimeError, NotImplementedError) as e:
                            errs[eng] = str(e).splitlines()[0]
                            print(f"  {eng}: {e}", file=sys.stderr, flush=True)
                            continue
                        best[eng] = max(best[eng], tps)
                        rss[eng] = max(rss[eng], r)
                ceil = bw.get(t, bw.get(1, 0.0)) * 1e9 / wbytes if (kind == "tg" and bw) else None
                row = {"file": name, "threads": t, "test": label, "libmistral_tps": best["lm"] or None,
                       "llamacpp_tps": best["lc"] or None, "rss_mib_libmistral": rss["lm"] or None,
                       "rss_mib_llamacpp": rss["lc"] or None, "ceiling_tps": ceil, "errors": errs}
                row.update(getattr(measure_mistral, "info", {}))
                rows.append(row)
                print(f"  {name} t={t} {label}: libmistral {best['lm']:.2f} tok/s ({rss['lm']:.0f} MiB), "
                      f"llama.cpp {best['lc']:.2f} tok/s ({rss['lc']:.0f} MiB)", flush=True)

    def f(x, fmt):
        return format(x, fmt) if x else "n/a"

    print()
    print(f"tok/s, best of {a.reps}; RSS = peak resident MiB of the measuring process (libmistral / llama.cpp); "
          f"ceiling = bandwidth / weight bytes per token")
    print("| file | threads | test | libmistral tok/s | llama.cpp tok/s | ratio | RSS MiB libmistral / llama.cpp "
          "| % of decode ceiling libmistral / llama.cpp |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lm, lc, c = r["libmistral_tps"], r["llamacpp_tps"], r["ceiling_tps"]
        ratio = f"{lm / lc:.2f}" if lm and lc else "n/a"
        pct = f"{f(lm and 100 * lm / c, '.0f')}% / {f(lc and 100 * lc / c, '.0f')}% (ceiling {c:.1f})" if c else ""
        print(f"| {r['file']} | {r['threads']} | {r['test']} | {f(lm, '.2f')} | {f(lc, '.2f')} | {ratio} "
              f"| {f(r['rss_mib_libmistral'], '.0f')} / {f(r['rss_mib_llamacpp'], '.0f')} | {pct} |")
    info = getattr(measure_mistral, "info", {})
    if info:
        print(f"libmistral: kernels {info.get('kernels', '?')}, KV cache {info.get('kv', '?')}; "
              f"llama.cpp: KV cache f16, n_batch = n_ubatch = 512")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"cpu": cpu_line(), "bandwidth_gbs": bw, "reps": a.reps, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
