#!/usr/bin/env python3
"""The numbers of the README's "Running Mistral Small 3.1 24B" section, computed, not guessed.

File sizes and RAM come from the architecture (40 layers, hidden 5120, 32 heads x 128, 8 KV heads, FFN 32768,
vocab 131072; Pixtral encoder 24 x 1024, FFN 4096): the script writes header-only copies of the three forms people
download — an HF folder (config.json + a bf16 model.safetensors) and llama.cpp GGUF files in Q8_0, Q4_0 and Q4_K_M
with llama.cpp's tensor types — as sparse files (nothing is allocated on disk), and asks libmistral's own
mistral.estimate() what loading each of them with a context of 4096, 32768 and 131072 positions (KV f16) needs.
Expected speed scales the proxy measurements of the README's performance section (bench/proxy_bench.py: the real
shapes with 2 layers) to 40 layers; it is an estimate, not a measurement.

    python3 bench/mistral_small_24b.py          # prints the README's tables (Markdown)
"""
import json
import os
import struct
import sys
import tempfile

# The same numbers on every machine: without the AVX-512 path's load-time repacking (whose 2 MiB huge pages add a
# little, printed separately below).
os.environ["MISTRAL_REPACK"] = "0"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import mistral  # noqa: E402

LAYERS, HIDDEN, HEADS, HEAD_DIM, KV_HEADS, FFN, VOCAB, CTX_TRAIN = 40, 5120, 32, 128, 8, 32768, 131072, 131072
# Pixtral encoder + projector of Mistral Small 3.1 (vision_config, multi_modal_projector)
V_LAYERS, V_HIDDEN, V_FFN, PATCH = 24, 1024, 4096, 14
CONTEXTS = [4096, 32768, 131072]
THREADS = 8
GB = 1e9
GIB = 1 << 30

# ggml types: id, values per block, bytes per block
F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K = (0, 1, 4), (1, 1, 2), (30, 1, 2), (2, 32, 18), (8, 32, 34), (12, 256, 144), \
    (14, 256, 210)


def matrices():
    """(gguf name, hf name, cols, rows) of every decoder matrix; cols varies fastest (ggml order)."""
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    out = [("token_embd.weight", "language_model.model.embed_tokens.weight", HIDDEN, VOCAB),
           ("output.weight", "language_model.lm_head.weight", HIDDEN, VOCAB)]
    for l in range(LAYERS):
        p = f"language_model.model.layers.{l}."
        out += [(f"blk.{l}.attn_q.weight", p + "self_attn.q_proj.weight", HIDDEN, q),
                (f"blk.{l}.attn_k.weight", p + "self_attn.k_proj.weight", HIDDEN, kv),
                (f"blk.{l}.attn_v.weight", p + "self_attn.v_proj.weight", HIDDEN, kv),
                (f"blk.{l}.attn_output.weight", p + "self_attn.o_proj.weight", q, HIDDEN),
                (f"blk.{l}.ffn_gate.weight", p + "mlp.gate_proj.weight", HIDDEN, FFN),
                (f"blk.{l}.ffn_up.weight", p + "mlp.up_proj.weight", HIDDEN, FFN),
                (f"blk.{l}.ffn_down.weight", p + "mlp.down_proj.weight", FFN, HIDDEN)]
    return out


def norms():
    out = [("output_norm.weight", "language_model.model.norm.weight")]
    for l in range(LAYERS):
        out += [(f"blk.{l}.attn_norm.weight", f"language_model.model.layers.{l}.input_layernorm.weight"),
                (f"blk.{l}.ffn_norm.weight", f"language_model.model.layers.{l}.post_attention_layernorm.weight")]
    return out


def nbytes(t, n):
    return n // t[1] * t[2]


def use_more_bits(i, n):  # llama.cpp's llama_tensor_get_type: layers that get Q6_K in Q4_K_M
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def gguf_type(name, kind):
    if kind == "Q8_0":
        return Q8_0
    if kind == "Q4_0":
        return Q6_K if name == "output.weight" else Q4_0
    # Q4_K_M
    if name == "output.weight":
        return Q6_K
    if name.endswith(("attn_v.weight", "ffn_down.weight")) and use_more_bits(int(name.split(".")[1]), LAYERS):
        return Q6_K
    return Q4_K


def vision_params():
    per_layer = 4 * V_HIDDEN * V_HIDDEN + 3 * V_HIDDEN * V_FFN + 2 * V_HIDDEN
    encoder = V_LAYERS * per_layer + 3 * PATCH * PATCH * V_HIDDEN + V_HIDDEN
    projector = 4 * V_HIDDEN * V_HIDDEN + V_HIDDEN * HIDDEN + HIDDEN * HIDDEN + 2 * V_HIDDEN
    return encoder + projector


def text_params():
    return sum(c * r for _, _, c, r in matrices()) + (2 * LAYERS + 1) * HIDDEN


# ---- header-only files ---------------------------------------------------------------------------------------------
def write_hf(folder):
    config = {"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3",
              "text_config": {"hidden_size": HIDDEN, "intermediate_size": FFN, "num_attention_heads": HEADS,
                              "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "num_hidden_layers": LAYERS,
                              "vocab_size": VOCAB, "max_position_embeddings": CTX_TRAIN, "rms_norm_eps": 1e-5,
                              "rope_theta": 1e9, "model_type": "mistral"}}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    header, offset = {}, 0
    for _, hf, cols, rows in matrices():
        header[hf] = {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [offset, offset + rows * cols * 2]}
        offset += rows * cols * 2
    for _, hf in norms():
        header[hf] = {"dtype": "BF16", "shape": [HIDDEN], "data_offsets": [offset, offset + HIDDEN * 2]}
        offset += HIDDEN * 2
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        f.truncate(8 + len(blob) + offset)


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, kind):
    kv = [("general.architecture", 8, gguf_string("llama"))]
    for key, value in [("block_count", LAYERS), ("embedding_length", HIDDEN), ("feed_forward_length", FFN),
                       ("attention.head_count", HEADS), ("attention.head_count_kv", KV_HEADS),
                       ("attention.key_length", HEAD_DIM), ("attention.value_length", HEAD_DIM),
                       ("context_length", CTX_TRAIN), ("vocab_size", VOCAB)]:
        kv.append((f"llama.{key}", 4, struct.pack("<I", value)))
    kv.append(("llama.rope.freq_base", 6, struct.pack("<f", 1e9)))
    kv.append(("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5)))
    tokens = b"".join(gguf_string(f"t{i}") for i in range(VOCAB))  # the tokenizer tables' size follows the count
    kv.append(("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, VOCAB) + tokens))
    tensors, offset = [], 0
    for name, _, cols, rows in matrices():
        t = gguf_type(name, kind)
        tensors.append((name, [cols, rows], t, offset))
        offset += (nbytes(t, cols * rows) + 31) // 32 * 32
    for name, _ in norms():
        tensors.append((name, [HIDDEN], F32, offset))
        offset += HIDDEN * 4
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for key, vtype, value in kv:
        out += gguf_string(key) + struct.pack("<I", vtype) + value
    for name, dims, t, off in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", t[0], off)
    out += b"\0" * (-len(out) % 32)
    with open(path, "wb") as f:
        f.write(out)
        f.truncate(len(out) + offset)
    return len(out) + offset


# ---- speed, scaled from the proxy --------------------------------------------------------------------------------
# README "Kernels and performance": tokens/s of the 2-layer proxy, idle 2-core Zen 4, 2 threads and 1 thread
# (2026-12-02, AVX-512 interleaved kernels).
PROXY = {"Q4_K_M": {"pp2": 126.3, "pp1": 97.1, "tg2": 19.2, "tg1": 18.3},
         "Q4_0": {"pp2": 201.0, "pp1": 110.4, "tg2": 24.2, "tg1": 16.6},
         "Q8_0": {"pp2": 166.8, "pp1": 112.3, "tg2": 15.9, "tg1": 12.4}}
PROXY_LAYERS = 2
BANDWIDTH_2CORE = 48.9  # GB/s read by two processes on that machine (README)
BANDWIDTH_8CORE = 89.6  # GB/s: dual-channel DDR5-5600, a typical 8-core desktop (theoretical peak)


def speed_rows(sizes):
    """Decode reads every weight once per token: scale the proxy's effective read rate (GB/s) to the 40-layer
    file; for 8 cores, at the same fraction of the memory bandwidth. Prompt processing is compute-bound: the
    proxy's rate over the ratio of weights per token, and x4 cores (assumed linear; 1 -> 2 threads gave x1.7)."""
    rows = []
    for kind, p in PROXY.items():
        layer = sizes[kind]["layer"]
        proxy_bytes = PROXY_LAYERS * layer + sizes[kind]["output"]
        full_bytes = LAYERS * layer + sizes[kind]["output"]
        rate = p["tg2"] * proxy_bytes / GB  # GB/s the proxy decode reads
        tg2 = rate * GB / full_bytes
        tg8 = tg2 * BANDWIDTH_8CORE / BANDWIDTH_2CORE
        pp2 = p["pp2"] * proxy_bytes / full_bytes
        rows.append((kind, rate, tg2, tg8, pp2, pp2 * 4))
    return rows


def main():
    out = []
    n_text, n_vision = text_params(), vision_params()
    with tempfile.TemporaryDirectory() as tmp:
        hf = os.path.join(tmp, "hf")
        os.mkdir(hf)
        write_hf(hf)
        sizes = {}
        for kind in ("Q8_0", "Q4_0", "Q4_K_M"):
            path = os.path.join(tmp, f"{kind}.gguf")
            size = write_gguf(path, kind)
            layer = sum(nbytes(gguf_type(n, kind), c * r) for n, _, c, r in matrices() if n.startswith("blk.1."))
            sizes[kind] = {"path": path, "file": size, "layer": layer,
                           "output": nbytes(gguf_type("output.weight", kind), HIDDEN * VOCAB)}
        forms = [("HF / native bf16, used in place", hf, None), ("HF / native bf16, `--weights q8_0`", hf, "q8_0"),
                 ("HF / native bf16, `--weights q4_0`", hf, "q4_0")] + \
                [(f"GGUF {k}", sizes[k]["path"], None) for k in ("Q8_0", "Q4_K_M", "Q4_0")]
        out.append(f"Parameters: text decoder {n_text / 1e9:.2f} B, vision encoder + projector {n_vision / 1e9:.2f} B. "
                   f"KV cache (f16) per token: 2 x {LAYERS} x {KV_HEADS} x {HEAD_DIM} x 2 bytes = "
                   f"{2 * LAYERS * KV_HEADS * HEAD_DIM * 2 // 1024} KiB.")
        out.append("")
        out.append("| form | weights | + n_ctx 4096 | + n_ctx 32768 | + n_ctx 131072 |")
        out.append("|---|---|---|---|---|")
        for label, path, wt in forms:
            es = [mistral.estimate(path, n_ctx=c, threads=THREADS, weight_type=wt) for c in CONTEXTS]
            cells = [f"{es[0].weights_bytes / GIB:.1f} GiB"] + [f"{e.total_bytes / GIB:.1f} GiB" for e in es]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
        out.append(f"Files: HF bf16 {(n_text + n_vision) * 2 / GB:.1f} GB (text {n_text * 2 / GB:.1f} GB + vision "
                   f"{n_vision * 2 / GB:.2f} GB); GGUF " + ", ".join(
                       f"{k} {sizes[k]['file'] / GB:.1f} GB" for k in ("Q8_0", "Q4_K_M", "Q4_0"))
                   + f"; mmproj f16 {n_vision * 2 / GB:.2f} GB (add it to the RAM of a GGUF with images).")
        huge = 2 << 20
        waste = {k: sum(-nbytes(gguf_type(n, k), c * r) % huge for n, _, c, r in matrices() if n.startswith("blk."))
                 for k in ("Q8_0", "Q4_K_M", "Q4_0")}
        out.append("On AVX-512 machines the layer matrices are repacked at load into 2 MiB huge pages: + "
                   + ", ".join(f"{waste[k] / GIB:.2f} GiB ({k})" for k in ("Q8_0", "Q4_K_M", "Q4_0")) + ".")
        out.append("")
        out.append("| GGUF | proxy decode read rate, 2 threads | decode tok/s, 2 cores | decode tok/s, 8 cores | "
                   "prompt tok/s, 2 cores | prompt tok/s, 8 cores |")
        out.append("|---|---|---|---|---|---|")
        for kind, rate, tg2, tg8, pp2, pp8 in speed_rows(sizes):
            out.append(f"| {kind} | {rate:.1f} GB/s | {tg2:.2f} | {tg8:.1f} | {pp2:.1f} | {pp8:.0f} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
