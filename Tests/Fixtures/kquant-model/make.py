#!/usr/bin/env python3
"""A small random Llama model quantized by llama.cpp to K-quants, and llama.cpp's logits for it: the reference for
libmistral's Q2_K..Q6_K kernels on whole models (the block-level reference is ../kquants).

    source bench/llamacpp-env.sh        # llama.cpp (0c1e57098, from the llama-cpp-python 0.3.36 sdist) + llama_cpp
    python3 Tests/Fixtures/kquant-model/make.py [--keep-f32] [--types Q4_K_M,...]

Model: architecture `llama`, hidden 256, 2 layers, 4 heads x head_dim 64, 2 KV heads, FFN 768, rope theta 1e6,
rms eps 1e-5, context 4096, untied output, vocab 4096 with the tokenizer metadata of ../tiny-s (Tekken-style BPE).
Every matrix has a column count divisible by 256, so llama-quantize really uses the K types (its mixes put Q6_K on
`output` and on some attn_v / ffn_down; manifest.json lists each tensor's type). Weights are N(0, sigma) with
sigma 0.02 (0.05 for attn_q, attn_k and output, so that attention is not uniform and logits have margins), each
row multiplied by a log-uniform factor in [0.5, 2] so that block scales differ; norms 1 + N(0, 0.05); seed 1234.

Outputs, per TYPE (the quantized GGUFs are the test inputs; the F32 GGUF is rebuilt by this script, kept only with
--keep-f32):
  kquant-<TYPE>.gguf   llama-quantize kquant-F32.gguf kquant-<TYPE>.gguf TYPE 1
  ref_<TYPE>.npy       float32 [40, 4096]: llama.cpp's logits at every position of tokens = prompt (24 ids) +
                       16 greedy tokens, teacher-forced along llama.cpp's own greedy path (prompt in one batch with
                       logits for all tokens, then one token per llama_decode)
  ref_<TYPE>.json      prompt, greedy (the 16 fed tokens), next (argmax after the last one), tokens (all 40 fed),
                       margins (top-1 minus top-2 logit at every position), rel_l2_vs_f32_prompt
  ref_F32.npy/.json    the same for the un-quantized model (its own greedy path; the 24 prompt rows are common to
                       every file, so they measure how far quantization itself moves the logits)
  manifest.json        file -> {tensor: ggml type}, sizes, settings
Greedy = argmax over the logits with EOS (id 2) excluded. llama.cpp settings: 1 thread, n_ctx 128, n_batch 128,
default context parameters otherwise (f16 KV cache, flash attention auto -> on for CPU).
"""
import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
TINY_S = os.path.join(ROOT, "Tests", "Fixtures", "tiny-s", "gguf", "tiny-s-f32.gguf")

N_EMBD, N_LAYER, N_HEAD, HEAD_DIM, N_HEAD_KV, N_FF, N_VOCAB = 256, 2, 4, 64, 2, 768, 4096
ROPE_THETA, RMS_EPS, N_CTX_TRAIN = 1e6, 1e-5, 4096
SEED = 1234
N_PROMPT, N_GEN, EOS = 24, 16, 2
TYPES = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q2_K", "Q4_0", "Q8_0"]
PROMPT = [1] + [1000 + (i * 977 + 131) % (N_VOCAB - 1000) for i in range(N_PROMPT - 1)]


def field_value(f):
    """A GGUFReader field as a (python value, element GGUFValueType)."""
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        sub = f.types[1]
        if sub == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data], sub
        return [f.parts[i][0].item() for i in f.data], sub
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8"), f.types[0]
    return f.parts[f.data[0]][0].item(), f.types[0]


def write_f32(path):
    rng = np.random.default_rng(SEED)

    def mat(rows, cols, sigma=0.02):
        w = rng.standard_normal((rows, cols), dtype=np.float32) * sigma
        w *= np.exp(rng.uniform(np.log(0.5), np.log(2.0), size=(rows, 1))).astype(np.float32)
        return w

    def norm():
        return (1.0 + 0.05 * rng.standard_normal(N_EMBD)).astype(np.float32)

    w = GGUFWriter(path, "llama")
    w.add_name("kquant-model")
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_freq_base(ROPE_THETA)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_vocab_size(N_VOCAB)
    w.add_file_type(0)  # ALL_F32

    # tokenizer: tiny-s's metadata (vocab 4096: 1000 control tokens + byte-level BPE), scores written as float32
    r = GGUFReader(TINY_S)
    tok = {k: field_value(f) for k, f in r.fields.items() if k.startswith("tokenizer.")}
    w.add_tokenizer_model(tok["tokenizer.ggml.model"][0])
    w.add_tokenizer_pre(tok["tokenizer.ggml.pre"][0])
    tokens = tok["tokenizer.ggml.tokens"][0]
    assert len(tokens) == N_VOCAB, len(tokens)
    w.add_token_list(tokens)
    w.add_token_scores([float(s) for s in tok["tokenizer.ggml.scores"][0]])
    w.add_token_types(tok["tokenizer.ggml.token_type"][0])
    w.add_token_merges(tok["tokenizer.ggml.merges"][0])
    w.add_bos_token_id(tok["tokenizer.ggml.bos_token_id"][0])
    w.add_eos_token_id(tok["tokenizer.ggml.eos_token_id"][0])
    w.add_unk_token_id(tok["tokenizer.ggml.unknown_token_id"][0])
    w.add_pad_token_id(tok["tokenizer.ggml.padding_token_id"][0])
    w.add_add_bos_token(tok["tokenizer.ggml.add_bos_token"][0])
    w.add_add_eos_token(tok["tokenizer.ggml.add_eos_token"][0])
    if "tokenizer.chat_template" in tok:
        w.add_chat_template(tok["tokenizer.chat_template"][0])

    # numpy shape (rows, cols) = ggml ne reversed; every cols value (256, 768) is a multiple of 256
    w.add_tensor("token_embd.weight", mat(N_VOCAB, N_EMBD))
    for l in range(N_LAYER):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", norm())
        w.add_tensor(p + "attn_q.weight", mat(N_HEAD * HEAD_DIM, N_EMBD, 0.05))
        w.add_tensor(p + "attn_k.weight", mat(N_HEAD_KV * HEAD_DIM, N_EMBD, 0.05))
        w.add_tensor(p + "attn_v.weight", mat(N_HEAD_KV * HEAD_DIM, N_EMBD))
        w.add_tensor(p + "attn_output.weight", mat(N_EMBD, N_HEAD * HEAD_DIM))
        w.add_tensor(p + "ffn_norm.weight", norm())
        w.add_tensor(p + "ffn_gate.weight", mat(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_up.weight", mat(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_down.weight", mat(N_EMBD, N_FF))
    w.add_tensor("output_norm.weight", norm())
    w.add_tensor("output.weight", mat(N_VOCAB, N_EMBD, 0.05))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def find_quantize():
    for c in [os.environ.get("LLAMA_QUANTIZE"), shutil.which("llama-quantize"),
              os.path.join(os.environ.get("LLAMA_CPP_BUILD", "/opt/llama.cpp-build"), "bin", "llama-quantize")]:
        if c and os.path.exists(c):
            return c
    sys.exit("llama-quantize not found: source bench/llamacpp-env.sh (build_llamacpp builds it)")


_quiet = None


def reference(path):
    """llama.cpp's logits along its own greedy path: [N_PROMPT + N_GEN, n_vocab] float32, and the fed tokens."""
    import llama_cpp as L
    global _quiet
    if _quiet is None:
        _quiet = L.llama_log_callback(lambda level, text, user_data: None)
        L.llama_log_set(_quiet, None)
        L.llama_backend_init()
    m = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    assert m, path
    vocab = L.llama_model_get_vocab(m)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    assert n_vocab == N_VOCAB and L.llama_vocab_eos(vocab) == EOS
    cp = L.llama_context_default_params()
    cp.n_ctx = 128
    cp.n_batch = cp.n_ubatch = 128
    cp.n_threads = cp.n_threads_batch = 1
    ctx = L.llama_init_from_model(m, cp)
    assert ctx
    batch = L.llama_batch_init(128, 0, 1)

    def decode(ids, pos0):
        batch.n_tokens = len(ids)
        for i, t in enumerate(ids):
            batch.token[i] = t
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1
        rc = L.llama_decode(ctx, batch)
        assert rc == 0, rc
        return [np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).copy()
                for i in range(len(ids))]

    def pick(row):
        r = row.astype(np.float64).copy()
        r[EOS] = -np.inf
        return int(np.argmax(r))

    rows = decode(PROMPT, 0)
    tokens = list(PROMPT)
    for _ in range(N_GEN):
        t = pick(rows[-1])
        tokens.append(t)
        rows += decode([t], len(tokens) - 1)
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(m)
    logits = np.stack(rows).astype(np.float32)
    margins = []
    for row in logits:
        r = row.astype(np.float64).copy()
        r[EOS] = -np.inf
        top2 = np.sort(r)[-2:]
        margins.append(float(top2[1] - top2[0]))
    return logits, tokens, pick(logits[-1]), margins


def rel_l2(a, b):
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b.astype(np.float64)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--keep-f32", action="store_true", help="keep kquant-F32.gguf (14 MB) in the directory")
    a = ap.parse_args()
    types = [t for t in a.types.split(",") if t]
    quantize = find_quantize()
    f32 = os.path.join(HERE, "kquant-F32.gguf")
    write_f32(f32)

    def save(name, logits, tokens, nxt, margins, extra):
        np.save(os.path.join(HERE, f"ref_{name}.npy"), logits)
        info = {"file": f"kquant-{name}.gguf", "llama_cpp": "0c1e57098 (llama-cpp-python 0.3.36 sdist)",
                "n_ctx": 128, "threads": 1, "kv_cache": "f16", "eos_excluded": EOS,
                "n_prompt": N_PROMPT, "n_gen": N_GEN, "prompt": PROMPT, "greedy": tokens[N_PROMPT:], "next": nxt,
                "tokens": tokens, "margins": margins, **extra}
        with open(os.path.join(HERE, f"ref_{name}.json"), "w") as f:
            json.dump(info, f, indent=1)

    ref32, tok32, nxt32, mar32 = reference(f32)
    save("F32", ref32, tok32, nxt32, mar32, {})
    manifest = {}
    for t in types:
        out = os.path.join(HERE, f"kquant-{t}.gguf")
        subprocess.run([quantize, f32, out, t, "1"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = GGUFReader(out)
        manifest[os.path.basename(out)] = {
            "size": os.path.getsize(out),
            "tensors": {x.name: GGMLQuantizationType(x.tensor_type).name for x in r.tensors}}
        logits, tokens, nxt, margins = reference(out)
        same = 0
        while same < N_GEN and tokens[N_PROMPT + same] == tok32[N_PROMPT + same]:
            same += 1
        extra = {"rel_l2_vs_f32_prompt": rel_l2(logits[:N_PROMPT], ref32[:N_PROMPT]),
                 "greedy_prefix_same_as_f32": same}
        save(t, logits, tokens, nxt, margins, extra)
        print(f"{t:7s} {os.path.getsize(out):>9d} B  rel-L2 vs F32 (prompt rows) {extra['rel_l2_vs_f32_prompt']:.4f}"
              f"  greedy tokens equal to F32's: {same}/{N_GEN}  min margin {min(margins[N_PROMPT - 1:]):.4f}")
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    if not a.keep_f32:
        os.remove(f32)


if __name__ == "__main__":
    main()
