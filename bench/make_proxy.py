#!/usr/bin/env python3
"""A benchmark proxy of Mistral Small 3.1's text decoder: the real shapes, 2 layers instead of 40, random weights.

    pip install gguf numpy mistral-common && source bench/llamacpp-env.sh
    python3 bench/make_proxy.py [--out /opt/proxy] [--quantize Q4_K_M,Q4_0,Q8_0] [--no-keep-f16]

Writes OUT/proxy-F16.gguf (~4.9 GB): architecture `llama`, hidden 5120, 32 heads x head_dim 128 (key_length 128,
so the q rows, 4096, differ from hidden), 8 KV heads, FFN 32768, vocab 131072, untied output, rope theta 1e9,
rms eps 1e-5, context 131072, 2 layers; matrices N(0, 0.02) in f16 (generated in chunks of 64 Mi values), norms
f32 ones. Tokenizer: the real Tekken vocabulary (mistral-common's data/tekken_240911.json), converted as llama.cpp's
convert_hf_to_gguf does for Mistral-format models (gguf.vocab.MistralVocab: model gpt2, pre tekken, the 1000
special tokens as CONTROL then the byte-level-encoded BPE tokens, merges rebuilt from the ranks, bos 1, eos 2,
unk 0, pad 11, add_bos). Then OUT/proxy-<TYPE>.gguf for each --quantize type with llama-quantize (default mixes:
Q4_K_M and Q4_0 put Q6_K on output.weight).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFWriter

N_EMBD, N_LAYER, N_HEAD, HEAD_DIM, N_HEAD_KV, N_FF, N_VOCAB = 5120, 2, 32, 128, 8, 32768, 131072
ROPE_THETA, RMS_EPS, N_CTX_TRAIN = 1e9, 1e-5, 131072
SIGMA, SEED = 0.02, 31
CHUNK = 64 << 20  # values per generated chunk (256 MiB of float32)


def tekken_path(arg):
    if arg:
        return arg
    try:
        import mistral_common
        p = os.path.join(os.path.dirname(mistral_common.__file__), "data", "tekken_240911.json")
        if os.path.exists(p):
            return p
    except ImportError:
        pass
    p = os.path.join(os.path.dirname(__file__), "..", "models", "tekken_240911.json")
    if os.path.exists(p):
        return p
    sys.exit("tekken_240911.json not found: pip install mistral-common (or examples/download-tekken.sh), or --tekken")


def add_tekken(w, path):
    from gguf.vocab import MistralVocab, MistralTokenizerType
    with tempfile.TemporaryDirectory() as d:  # MistralVocab takes a model folder holding tekken.json
        os.symlink(os.path.abspath(path), os.path.join(d, "tekken.json"))
        v = MistralVocab(Path(d))
        assert v.tokenizer_type == MistralTokenizerType.tekken and v.vocab_size == N_VOCAB, v.vocab_size
        tokens, scores, types = [], [], []
        for text, score, toktype in v.all_tokens():
            tokens.append(text)
            scores.append(score)
            types.append(toktype)
        merges = v.extract_vocab_merges_from_model()
        w.add_tokenizer_model(v.gguf_tokenizer_model)
        w.add_tokenizer_pre("tekken")
        w.add_token_merges(merges)
        w.add_bos_token_id(v.bos_id)
        w.add_eos_token_id(v.eos_id)
        w.add_unk_token_id(v.unk_id)
        w.add_pad_token_id(v.pad_id)
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)


def tensors():
    """(name, numpy shape (rows, cols) or (n,), is_matrix) in file order."""
    yield "token_embd.weight", (N_VOCAB, N_EMBD), True
    for l in range(N_LAYER):
        p = f"blk.{l}."
        yield p + "attn_norm.weight", (N_EMBD,), False
        yield p + "attn_q.weight", (N_HEAD * HEAD_DIM, N_EMBD), True
        yield p + "attn_k.weight", (N_HEAD_KV * HEAD_DIM, N_EMBD), True
        yield p + "attn_v.weight", (N_HEAD_KV * HEAD_DIM, N_EMBD), True
        yield p + "attn_output.weight", (N_EMBD, N_HEAD * HEAD_DIM), True
        yield p + "ffn_norm.weight", (N_EMBD,), False
        yield p + "ffn_gate.weight", (N_FF, N_EMBD), True
        yield p + "ffn_up.weight", (N_FF, N_EMBD), True
        yield p + "ffn_down.weight", (N_EMBD, N_FF), True
    yield "output_norm.weight", (N_EMBD,), False
    yield "output.weight", (N_VOCAB, N_EMBD), True


def write_f16(path, tekken):
    w = GGUFWriter(path, "llama")
    w.add_name("mistral-small-3.1-text-proxy-2L")
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
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    add_tekken(w, tekken)
    specs = list(tensors())
    for name, shape, is_matrix in specs:
        dt = np.float16 if is_matrix else np.float32
        w.add_tensor_info(name, shape, np.dtype(dt), int(np.prod(shape)) * np.dtype(dt).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    w.write_padding(fout, fout.tell())  # start of the data section
    rng = np.random.default_rng(SEED)
    for name, shape, is_matrix in specs:
        n = int(np.prod(shape))
        if not is_matrix:
            np.ones(n, dtype=np.float32).tofile(fout)
            w.write_padding(fout, n * 4)
            continue
        done = 0
        while done < n:  # the values in row-major order, CHUNK at a time
            k = min(CHUNK, n - done)
            x = rng.standard_normal(k, dtype=np.float32)
            x *= SIGMA
            x.astype(np.float16).tofile(fout)
            done += k
        w.write_padding(fout, n * 2)
    w.fout[0].flush()
    w.close()


def find_quantize():
    for c in [os.environ.get("LLAMA_QUANTIZE"), shutil.which("llama-quantize"),
              os.path.join(os.environ.get("LLAMA_CPP_BUILD", "/opt/llama.cpp-build"), "bin", "llama-quantize")]:
        if c and os.path.exists(c):
            return c
    sys.exit("llama-quantize not found: source bench/llamacpp-env.sh (build_llamacpp builds it)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/opt/proxy")
    ap.add_argument("--quantize", default="Q4_K_M,Q4_0,Q8_0")
    ap.add_argument("--tekken", help="tekken_240911.json (default: mistral-common's copy)")
    ap.add_argument("--no-keep-f16", action="store_true", help="delete proxy-F16.gguf after quantizing")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    f16 = os.path.join(a.out, "proxy-F16.gguf")
    if not os.path.exists(f16):
        t0 = time.time()
        write_f16(f16 + ".part", tekken_path(a.tekken))
        os.replace(f16 + ".part", f16)
        print(f"{f16}: {os.path.getsize(f16) / 2**30:.2f} GiB in {time.time() - t0:.0f} s", flush=True)
    types = [t for t in a.quantize.split(",") if t]
    if types:
        q = find_quantize()
    for t in types:
        out = os.path.join(a.out, f"proxy-{t}.gguf")
        if os.path.exists(out):
            continue
        t0 = time.time()
        subprocess.run([q, f16, out + ".part", t, str(a.threads)], check=True, stdout=subprocess.DEVNULL)
        os.replace(out + ".part", out)
        print(f"{out}: {os.path.getsize(out) / 2**30:.2f} GiB in {time.time() - t0:.0f} s", flush=True)
    if a.no_keep_f16 and types:
        os.remove(f16)


if __name__ == "__main__":
    main()
