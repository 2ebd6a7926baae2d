"""Hostile input never kills the host (issue 9): each case returns a status and a message, or finishes within a
stated bound, and the process lives on. docs/errors.md lists every case with the test that proves it."""
import math
import os
import time

import pytest

import mistral
import hostile_files as H
from conftest import MODEL_PATH

lib = mistral._lib


def refused(status, needle, load, *args, **kwargs):
    with pytest.raises(mistral.MistralError) as e:
        load(*args, **kwargs)
    assert e.value.status == status, e.value
    assert needle in e.value.message, e.value.message
    return e.value


# ---- numbers read from files --------------------------------------------------------------------------------
@pytest.mark.parametrize("ctx", [1 << 31, 1 << 40, -80, 0])
def test_trained_context_out_of_range_gguf(tmp_path, ctx):
    path = H.gguf_file(tmp_path, {"mistral3.context_length": (11, ctx)})  # i64
    refused(mistral.ERR_FORMAT, "trained context length", mistral.Model, path)


@pytest.mark.parametrize("ctx", [1 << 31, -5])
def test_trained_context_out_of_range_hf(tmp_path, ctx):
    def edit(c):
        c["text_config"]["max_position_embeddings"] = ctx
    refused(mistral.ERR_FORMAT, "trained context length", mistral.Model, H.hf_folder(tmp_path, edit))


@pytest.mark.parametrize("ctx", [1 << 31, -5])
def test_trained_context_out_of_range_native(tmp_path, ctx):
    def edit(p):
        p["max_seq_len"] = ctx
    refused(mistral.ERR_FORMAT, "trained context length", mistral.Model, H.native_folder(tmp_path, edit))


def test_largest_trained_context_is_reported_exactly(tmp_path):
    m = mistral.Model(H.gguf_file(tmp_path, {"mistral3.context_length": (4, (1 << 31) - 1)}))
    assert m.n_ctx_train == (1 << 31) - 1 == lib.mistral_model_n_ctx_train(m.handle)
    with mistral.Session(m, threads=1) as s:  # default n_ctx = min(trained, 4096)
        assert s.n_ctx == 4096


def test_image_token_index_out_of_range_hf(tmp_path):
    def edit(c):
        c["image_token_index"] = 1 << 31
    refused(mistral.ERR_FORMAT, "image_token_id", mistral.Model, H.hf_folder(tmp_path, edit))


def test_image_token_id_out_of_range_native(tmp_path):
    def edit(p):
        p["vision_encoder"]["image_token_id"] = 1 << 31
    refused(mistral.ERR_FORMAT, "image_token_id", mistral.Model, H.native_folder(tmp_path, edit))


def test_image_token_id_outside_vocabulary(tmp_path):
    def edit(c):
        c["image_token_index"] = 5000  # the vocabulary has 4096 tokens
    refused(mistral.ERR_FORMAT, "outside the vocabulary", mistral.Model, H.hf_folder(tmp_path, edit))


@pytest.mark.parametrize("n", [10 ** 9, 2 * 10 ** 7, (1 << 16) + 1])
def test_tekken_huge_special_token_count(tmp_path, n):
    def edit(t):
        t["config"]["default_num_special_tokens"] = n
        t["config"]["default_vocab_size"] = n + 3096
    t0 = time.monotonic()
    refused(mistral.ERR_FORMAT, "special tokens is out of range", mistral.Model, H.tekken_file(tmp_path, edit))
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("key,value,needle", [
    ("mistral3.rope.freq_base", math.inf, "rope theta"),
    ("mistral3.rope.freq_base", math.nan, "rope theta"),
    ("mistral3.rope.freq_base", -1.0, "rope theta"),
    ("mistral3.attention.layer_norm_rms_epsilon", math.nan, "rms epsilon"),
    ("mistral3.attention.layer_norm_rms_epsilon", math.inf, "rms epsilon"),
])
def test_non_finite_gguf_floats(tmp_path, key, value, needle):
    refused(mistral.ERR_FORMAT, needle, mistral.Model, H.gguf_file(tmp_path, {key: (6, value)}))


def test_non_finite_hf_floats(tmp_path):
    def theta(c):
        c["text_config"]["rope_parameters"]["rope_theta"] = math.inf  # written as 1e999
    refused(mistral.ERR_FORMAT, "rope theta", mistral.Model, H.hf_folder(tmp_path, theta))

    def eps(c):
        c["text_config"]["rms_norm_eps"] = math.inf
    (tmp_path / "b").mkdir()
    refused(mistral.ERR_FORMAT, "rms epsilon", mistral.Model, H.hf_folder(tmp_path / "b", eps))


def test_non_finite_native_floats(tmp_path):
    def edit(p):
        p["rope_theta"] = math.inf
    refused(mistral.ERR_FORMAT, "rope theta", mistral.Model, H.native_folder(tmp_path, edit))


def test_non_finite_vision_mean(tmp_path):
    overrides = {"clip.vision.image_mean": (9, (6, [math.nan, 0.5, 0.5]))}
    mm = tmp_path / "mmproj.gguf"
    mm.write_bytes(H.gguf_with(os.path.join(H.TINY, "gguf", "mmproj-tiny-s-f16.gguf"), overrides))
    refused(mistral.ERR_FORMAT, "mean/std", mistral.Model, H.TINY_GGUF, mmproj_path=str(mm))


# ---- allocations sized by a caller ------------------------------------------------------------------------------
def test_kv_cache_larger_than_memory(model):
    # SmolLM2: 30 layers x 192 kv dims x 2 (keys, values) x 2 bytes (f16) = 22.5 KiB per position: 2^22 = 90 GiB
    e = refused(mistral.ERR_OUT_OF_MEMORY, "memory", mistral.Session, model, n_ctx=1 << 22, threads=1)
    assert "n_ctx 4194304" in e.message


def test_kv_cache_2_pow_20_on_a_small_machine(model):
    needed = 30 * 192 * 2 * 4 * (1 << 20)  # an f32 cache: 45 GiB
    if os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >= needed:
        pytest.skip("this machine could hold the cache")
    e = refused(mistral.ERR_OUT_OF_MEMORY, "memory", mistral.Session, model, n_ctx=1 << 20, threads=1, kv_type="f32")
    assert "45.0 GiB" in e.message


# ---- images -------------------------------------------------------------------------------------------------------
def test_jpeg_scan_bomb_is_refused_fast():
    bomb = H.scan_bomb(2000)
    assert 120_000 < len(bomb) < 250_000
    t0 = time.monotonic()
    refused(mistral.ERR_FORMAT, "JPEG", mistral.Image.from_bytes, bomb)
    assert time.monotonic() - t0 < 2


def test_jpeg_over_the_pixel_scan_budget_is_refused_before_decoding():
    data = H.pixel_scan_bomb()
    t0 = time.monotonic()
    e = refused(mistral.ERR_FORMAT, "pixel-scans", mistral.Image.from_bytes, data)
    assert "10000x10000" in e.message and time.monotonic() - t0 < 1


def test_truncated_jpeg_ending_in_eoi_is_refused():
    refused(mistral.ERR_FORMAT, "JPEG", mistral.Image.from_bytes, H.truncated_with_eoi())


def test_valid_jpegs_still_decode():
    for progressive in (False, True):
        img = mistral.Image.from_bytes(H.jpeg(96, 64, progressive=progressive))
        assert (img.width, img.height) == (96, 64)


BAD = os.path.join(H.FIXTURES, "bad")
BAD_FILES = sorted(n for n in os.listdir(BAD) if "--" in n)
SEP = b"\n--8<--\n"  # the fuzz harness's part separator


def load_bad(target, path, tmp_path, tekken):
    """What the fuzz target does with the file, through the Python API."""
    if target == "image":
        return mistral.Image.open(path)
    if target in ("gguf", "gguf-vocab", "tekken"):
        return mistral.Model(path, vocab_only=target == "gguf-vocab")
    names = {"hf": ["config.json", "model.safetensors", "model.safetensors.index.json"],
             "native": ["params.json", "consolidated.safetensors"]}[target]
    folder = tmp_path / target
    folder.mkdir()
    for name, part in zip(names, open(path, "rb").read().split(SEP)):
        (folder / name).write_bytes(part)
    return mistral.Model(str(folder), tokenizer_path=tekken)


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_fixture_files(tmp_path, name):
    """Every regression file under Tests/Fixtures/bad/ (hand-made ones and the fuzz campaign's crash inputs) runs
    through its fuzz harness (the replay build of MistralFuzz) with the process alive, and through the Python API
    with a status and a message."""
    import subprocess
    import sys
    from conftest import BUILD, ROOT
    sys.path.insert(0, os.path.join(ROOT, "Tests", "fuzz"))
    import minimodels
    tekken = tmp_path / "tekken.json"
    tekken.write_bytes(minimodels.tekken())
    target, path = name.split("--")[0], os.path.join(BAD, name)
    env = dict(os.environ, MISTRAL_FUZZ_TEKKEN=str(tekken))
    out = subprocess.run([os.path.join(BUILD, "MistralFuzz"), target, path], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0 and out.stdout.startswith("ok "), out.stdout + out.stderr
    try:
        load_bad(target, path, tmp_path, str(tekken)).close()
    except mistral.MistralError as e:
        assert e.message
    else:
        assert name.split("--", 1)[1].startswith("fuzz-"), f"{name} should be refused"
