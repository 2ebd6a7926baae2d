#!/usr/bin/env python3
"""The Pixtral encoder of Mistral Small 3.1 at real size, libmistral against llama.cpp's mtmd, on one mmproj file.

    source bench/llamacpp-env.sh   # llama-mtmd-cli in $LLAMA_CPP_BUILD/bin
    swift build -c release --product VisionBench
    /work/helpers/quiet.sh python3 bench/vision_vs_llamacpp.py [--sides 512,1024] [--threads 2] [--runs 2]

Writes (once) /tmp/mistral-vision-bench/mmproj-real-size-f16.gguf: what llama.cpp's convert_hf_to_gguf.py writes
for Mistral Small 3.1's mmproj (general.architecture clip, clip.projector_type pixtral, clip.use_silu, spatial merge
2, v.* / mm.* tensors, v.token_embd.img_break), random N(0, 1/fan_in) f16 matrices: 24 layers, hidden 1024, 16 heads
x 64, FFN 4096, patch 14, image_size 1540, projector to 5120. And text-5120.gguf, a 1-layer llama with n_embd 5120
and a byte vocabulary, which llama-mtmd-cli needs beside the mmproj (its time is not counted: llama.cpp logs the
image encode alone, "mtmd batch encoding done in N ms"; its warmup at load runs first, as in normal use).

Runs A (libmistral: VisionBench on the same mmproj, its packed GEMM in bf16-compute mode unless --compute f32) and
B (llama-mtmd-cli) interleaved, A B A B ..., best of --runs each, and prints seconds, image tokens, GFLOP/s of each
(the same FLOP count formula over each engine's own patch count: the engines cut images differently, libmistral as
mistral-common does) and the ratio.
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFWriter

D, LAYERS, HEADS, FFN, PATCH, TEXT, IMAGE_SIZE = 1024, 24, 16, 4096, 14, 5120, 1540
WORK = Path("/tmp/mistral-vision-bench")


def flops(patches):
    """Multiply-adds x 2 of the encoder + projector for one image of `patches` patches."""
    n = patches
    gemm = 2 * n * LAYERS * (4 * D * D + 3 * D * FFN)
    attn = 4 * n * n * D * LAYERS
    proj = 2 * n / 4 * (4 * D * D + D * TEXT + TEXT * TEXT) + 2 * n * (3 * PATCH * PATCH * D)
    return gemm + attn + proj


def write_mmproj(path):
    rng = np.random.default_rng(12)
    w = GGUFWriter(str(path), "clip")
    w.add_type("mmproj")
    w.add_name("random real-size pixtral")
    w.add_file_type(1)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_uint32("clip.vision.projection_dim", TEXT)
    w.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    w.add_uint32("clip.vision.patch_size", PATCH)
    w.add_uint32("clip.vision.embedding_length", D)
    w.add_uint32("clip.vision.feed_forward_length", FFN)
    w.add_uint32("clip.vision.block_count", LAYERS)
    w.add_uint32("clip.vision.attention.head_count", HEADS)
    w.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    w.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])
    w.add_string("clip.projector_type", "pixtral")
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    w.add_bool("clip.use_silu", True)
    w.add_uint32("clip.vision.spatial_merge_size", 2)

    def mat(name, rows, cols):  # numpy (rows, cols) = ggml [cols, rows]
        w.add_tensor(name, (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(np.float16))

    def norm(name, n):
        w.add_tensor(name, (1 + 0.1 * rng.uniform(-1, 1, n)).astype(np.float32))

    w.add_tensor("v.patch_embd.weight",
                 (rng.standard_normal((D, 3, PATCH, PATCH), dtype=np.float32) / np.sqrt(3 * PATCH * PATCH)).astype(np.float16))
    norm("v.pre_ln.weight", D)
    for l in range(LAYERS):
        p = f"v.blk.{l}."
        for t in ("attn_q", "attn_k", "attn_v", "attn_out"):
            mat(p + t + ".weight", D, D)
        norm(p + "ln1.weight", D)
        norm(p + "ln2.weight", D)
        mat(p + "ffn_gate.weight", FFN, D)
        mat(p + "ffn_up.weight", FFN, D)
        mat(p + "ffn_down.weight", D, FFN)
    norm("mm.input_norm.weight", D)
    mat("mm.patch_merger.weight", D, 4 * D)
    mat("mm.1.weight", TEXT, D)
    mat("mm.2.weight", TEXT, TEXT)
    w.add_tensor("v.token_embd.img_break", (0.02 * rng.standard_normal(TEXT)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def write_text_model(path):
    """1 layer, n_embd 5120 (what the mmproj projects to), byte-level vocabulary plus the image specials."""
    rng = np.random.default_rng(5)
    specials = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"]
    tokens = specials + bytes_to_unicode()
    nv, heads, kv, hd, ff = len(tokens), 32, 8, 128, 512
    w = GGUFWriter(str(path), "llama")
    w.add_name("text-5120 stub")
    w.add_context_length(4096)
    w.add_embedding_length(TEXT)
    w.add_block_count(1)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_freq_base(1e9)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(nv)
    w.add_file_type(1)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3] * len(specials) + [1] * 256)
    w.add_token_merges(["Ġ t"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_chat_template("{% for m in messages %}[INST]{{ m['content'] }}[/INST]{% endfor %}")

    def mat(name, rows, cols):
        w.add_tensor(name, (0.02 * rng.standard_normal((rows, cols), dtype=np.float32)).astype(np.float16))

    mat("token_embd.weight", nv, TEXT)
    w.add_tensor("output_norm.weight", np.ones(TEXT, np.float32))
    mat("output.weight", nv, TEXT)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(TEXT, np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(TEXT, np.float32))
    mat("blk.0.attn_q.weight", heads * hd, TEXT)
    mat("blk.0.attn_k.weight", kv * hd, TEXT)
    mat("blk.0.attn_v.weight", kv * hd, TEXT)
    mat("blk.0.attn_output.weight", TEXT, heads * hd)
    mat("blk.0.ffn_gate.weight", ff, TEXT)
    mat("blk.0.ffn_up.weight", ff, TEXT)
    mat("blk.0.ffn_down.weight", TEXT, ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_png(path, side):
    """The same synthetic picture VisionBench draws (x*7+y, x^y, y*3), as an 8-bit RGB PNG."""
    import zlib, struct
    y, x = np.mgrid[0:side, 0:side]
    img = np.stack([(x * 7 + y) & 255, (x ^ y) & 255, (y * 3) & 255], -1).astype(np.uint8)
    raw = b"".join(b"\0" + img[r].tobytes() for r in range(side))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def run_libmistral(bench, mmproj, side, threads, compute):
    env = dict(os.environ, MISTRAL_VISION_COMPUTE=compute)
    out = subprocess.run([bench, str(threads), str(side), "-", "1", str(mmproj)], capture_output=True, text=True,
                         env=env, check=True).stdout
    m = re.search(r"\((\d+) patches, (\d+) tokens\).*encode ([0-9.e-]+) s", out)
    if not m:
        sys.exit("VisionBench said:\n" + out)
    return float(m.group(3)), int(m.group(1)), int(m.group(2))


def run_llamacpp(cli, text, mmproj, png, threads):
    r = subprocess.run([cli, "-m", str(text), "--mmproj", str(mmproj), "--image", str(png), "-p", "describe",
                        "-n", "1", "-t", str(threads), "-c", "8192", "-b", "2048", "-ub", "2048", "-v"],
                       capture_output=True, text=True)
    log = r.stdout + r.stderr
    # "mtmd batch encoding done in N ms" (the clip graph alone; the text decode of the rows is logged apart),
    # "copying image 1/1 to input buffer (nx=504, ny=504)", "image_tokens->nx = 341" ([IMG] + [IMG_BREAK] rows)
    m = re.search(r"(?:mtmd batch encoding done in|image slice encoded in) (\d+) ms", log)
    g = re.search(r"input buffer \(nx=(\d+), ny=(\d+)\)", log)
    t = re.search(r"image_tokens->nx = (\d+)", log)
    if not m or not g:
        sys.exit("llama-mtmd-cli said:\n" + log[-4000:])
    patches = (int(g.group(1)) // PATCH) * (int(g.group(2)) // PATCH)
    return float(m.group(1)) / 1000, patches, int(t.group(1)) if t else 0, log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sides", default="512,1024")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--compute", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--bench", default=".build/release/VisionBench")
    ap.add_argument("--cli", default=os.path.join(os.environ.get("LLAMA_CPP_BUILD", "/opt/llama.cpp-build"),
                                                  "bin", "llama-mtmd-cli"))
    a = ap.parse_args()
    WORK.mkdir(exist_ok=True)
    mmproj, text = WORK / "mmproj-real-size-f16.gguf", WORK / "text-5120.gguf"
    if not mmproj.exists():
        write_mmproj(mmproj)
    if not text.exists():
        write_text_model(text)
    have_cli = os.access(a.cli, os.X_OK)
    if not have_cli:
        print(f"llama-mtmd-cli not found at {a.cli}: libmistral only")
    flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0]
    print("cpu:", " ".join(f for f in flags.split() if f.startswith("avx512") or f in ("avx2", "fma", "f16c")))
    for side in [int(s) for s in a.sides.split(",")]:
        png = WORK / f"synthetic-{side}.png"
        write_png(png, side)
        best_a, best_b = None, None
        for _ in range(a.runs):
            r = run_libmistral(a.bench, mmproj, side, a.threads, a.compute)
            best_a = r if best_a is None or r[0] < best_a[0] else best_a
            if have_cli:
                r = run_llamacpp(a.cli, text, mmproj, png, a.threads)
                best_b = r if best_b is None or r[0] < best_b[0] else best_b
        ta, pa, ka = best_a
        ga = flops(pa) / ta / 1e9
        print(f"{side}x{side} libmistral ({a.compute}): {ta:.2f} s, {pa} patches, {ka} image tokens, {ga:.0f} GFLOP/s")
        if best_b:
            tb, pb, kb, _ = best_b
            gb = flops(pb) / tb / 1e9 if pb else float("nan")
            print(f"{side}x{side} llama.cpp mtmd:   {tb:.2f} s, {pb} patches, {kb} image tokens, {gb:.0f} GFLOP/s")
            print(f"{side}x{side} ratio (GFLOP/s libmistral / llama.cpp): {ga / gb:.2f}")


if __name__ == "__main__":
    main()
