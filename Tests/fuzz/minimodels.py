"""Minimal valid models for fuzz seeds (a 1-layer, 16-wide decoder over a 300-token vocabulary): each loads in well
under a millisecond, so the fuzzer spends its time mutating the parsers rather than re-reading tiny-s."""
import base64
import json
import struct

N_EMBD, N_HEAD, N_KV, HEAD_DIM, N_FF, N_SPECIAL = 16, 2, 1, 8, 32, 20
MERGES = [("h", "e"), ("l", "l"), ("o", " "), ("t", "h"), ("he", "ll")]
N_VOCAB = N_SPECIAL + 256 + len(MERGES)  # tekken: specials, 256 bytes, merges


def _values(n, seed):
    out, s = [], seed
    for _ in range(n):
        s = (s * 1103515245 + 12345) & 0x7FFFFFFF
        out.append((s % 2001 - 1000) / 5000.0)
    return out


def _f32(shape, seed):
    n = 1
    for d in shape:
        n *= d
    return struct.pack(f"<{n}f", *_values(n, seed))


def _tensors(names, N_EMBD=N_EMBD):
    """(name, shape rows-first, data) of one decoder layer under names[role]."""
    q, kv = N_HEAD * HEAD_DIM, N_KV * HEAD_DIM
    ones = struct.pack(f"<{N_EMBD}f", *([1.0] * N_EMBD))
    spec = [("embed", [N_VOCAB, N_EMBD]), ("norm", None), ("output", [N_VOCAB, N_EMBD]), ("attn_norm", None),
            ("wq", [q, N_EMBD]), ("wk", [kv, N_EMBD]), ("wv", [kv, N_EMBD]), ("wo", [N_EMBD, q]),
            ("ffn_norm", None), ("gate", [N_FF, N_EMBD]), ("up", [N_FF, N_EMBD]), ("down", [N_EMBD, N_FF])]
    return [(names[r], shape or [N_EMBD], _f32(shape, i) if shape else ones) for i, (r, shape) in enumerate(spec)]


def safetensors(names):
    header, data = {}, b""
    for name, shape, blob in _tensors(names):
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


HF_NAMES = {"embed": "model.embed_tokens.weight", "norm": "model.norm.weight", "output": "lm_head.weight",
            "attn_norm": "model.layers.0.input_layernorm.weight", "wq": "model.layers.0.self_attn.q_proj.weight",
            "wk": "model.layers.0.self_attn.k_proj.weight", "wv": "model.layers.0.self_attn.v_proj.weight",
            "wo": "model.layers.0.self_attn.o_proj.weight",
            "ffn_norm": "model.layers.0.post_attention_layernorm.weight", "gate": "model.layers.0.mlp.gate_proj.weight",
            "up": "model.layers.0.mlp.up_proj.weight", "down": "model.layers.0.mlp.down_proj.weight"}
NATIVE_NAMES = {"embed": "tok_embeddings.weight", "norm": "norm.weight", "output": "output.weight",
                "attn_norm": "layers.0.attention_norm.weight", "wq": "layers.0.attention.wq.weight",
                "wk": "layers.0.attention.wk.weight", "wv": "layers.0.attention.wv.weight",
                "wo": "layers.0.attention.wo.weight", "ffn_norm": "layers.0.ffn_norm.weight",
                "gate": "layers.0.feed_forward.w1.weight", "up": "layers.0.feed_forward.w3.weight",
                "down": "layers.0.feed_forward.w2.weight"}
GGUF_NAMES = {"embed": "token_embd.weight", "norm": "output_norm.weight", "output": "output.weight",
              "attn_norm": "blk.0.attn_norm.weight", "wq": "blk.0.attn_q.weight", "wk": "blk.0.attn_k.weight",
              "wv": "blk.0.attn_v.weight", "wo": "blk.0.attn_output.weight", "ffn_norm": "blk.0.ffn_norm.weight",
              "gate": "blk.0.ffn_gate.weight", "up": "blk.0.ffn_up.weight", "down": "blk.0.ffn_down.weight"}


def hf_config():
    return json.dumps({"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": N_EMBD,
                       "num_attention_heads": N_HEAD, "num_key_value_heads": N_KV, "head_dim": HEAD_DIM,
                       "intermediate_size": N_FF, "num_hidden_layers": 1, "vocab_size": N_VOCAB,
                       "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}).encode()


def native_params():
    return json.dumps({"dim": N_EMBD, "n_layers": 1, "head_dim": HEAD_DIM, "hidden_dim": N_FF, "n_heads": N_HEAD,
                       "n_kv_heads": N_KV, "rope_theta": 10000.0, "norm_eps": 1e-5, "vocab_size": N_VOCAB,
                       "max_seq_len": 64}).encode()


def tekken():
    specials = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]",
                "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]
    specials += [f"<SPECIAL_{i}>" for i in range(len(specials), N_SPECIAL)]
    vocab = [{"rank": i, "token_bytes": base64.b64encode(bytes([i])).decode()} for i in range(256)]
    for a, b in MERGES:
        vocab.append({"rank": len(vocab), "token_bytes": base64.b64encode((a + b).encode()).decode()})
    pattern = json.load(open(__file__.replace("minimodels.py", "../Fixtures/tiny-s/tokenizer/tekken.json")))["config"]["pattern"]
    return json.dumps({"config": {"pattern": pattern, "num_vocab_tokens": len(vocab), "default_vocab_size": N_VOCAB,
                                  "default_num_special_tokens": N_SPECIAL, "version": "v7"},
                       "vocab": vocab,
                       "special_tokens": [{"rank": i, "token_str": s, "is_control": True}
                                          for i, s in enumerate(specials)]}).encode()


def _byte_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def gguf(N_EMBD=N_EMBD):
    """llama.cpp-style GGUF: arch llama, gpt2 BPE tokenizer (256 byte tokens, the merges, <s>, </s>). n_embd 64
    matches tiny-s's mmproj projector."""
    bu = _byte_unicode()
    enc = lambda s: "".join(bu[b] for b in s.encode())
    tokens = [bu[b] for b in range(256)] + [enc(a + b) for a, b in MERGES] + ["<s>", "</s>"]
    n_vocab = len(tokens)
    s = lambda x: struct.pack("<Q", len(x.encode())) + x.encode()
    kv = [("general.architecture", 8, s("llama")), ("llama.embedding_length", 4, struct.pack("<I", N_EMBD)),
          ("llama.block_count", 4, struct.pack("<I", 1)), ("llama.feed_forward_length", 4, struct.pack("<I", N_FF)),
          ("llama.attention.head_count", 4, struct.pack("<I", N_HEAD)),
          ("llama.attention.head_count_kv", 4, struct.pack("<I", N_KV)),
          ("llama.attention.key_length", 4, struct.pack("<I", HEAD_DIM)),
          ("llama.context_length", 4, struct.pack("<I", 64)),
          ("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
          ("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5)),
          ("tokenizer.ggml.model", 8, s("gpt2")), ("tokenizer.ggml.pre", 8, s("smollm")),
          ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, n_vocab) + b"".join(s(t) for t in tokens)),
          ("tokenizer.ggml.merges", 9, struct.pack("<IQ", 8, len(MERGES))
           + b"".join(s(enc(a) + " " + enc(b)) for a, b in MERGES)),
          ("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, n_vocab)
           + struct.pack(f"<{n_vocab}i", *([1] * (n_vocab - 2) + [3, 3]))),
          ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", n_vocab - 2)),
          ("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", n_vocab - 1)),
          ("tokenizer.chat_template", 8, s("{% for m in messages %}<|im_start|>{{ m.role }}<|im_end|>{% endfor %}"))]
    tensors = []
    for name, shape, blob in _tensors(GGUF_NAMES, N_EMBD):
        if shape[0] == N_VOCAB:  # the GGUF's own vocabulary is smaller than the tekken one
            shape = [n_vocab] + shape[1:]
            blob = blob[:4 * n_vocab * shape[1]]
        tensors.append((name, shape, blob))
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    out += b"".join(s(k) + struct.pack("<I", t) + v for k, t, v in kv)
    data, offsets = b"", []
    for name, shape, blob in tensors:
        offsets.append(len(data))
        data += blob + b"\0" * ((32 - len(blob) % 32) % 32)
    for (name, shape, blob), off in zip(tensors, offsets):
        dims = list(reversed(shape))
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", 0, off)
    out += b"\0" * ((32 - len(out) % 32) % 32)
    return out + data
