"""Bad input through the C API: each case returns its status code and a message, and the process lives on."""
import ctypes
import os
import struct

import pytest

import mistral
from conftest import CHAT_PROMPT, MODEL_PATH

lib = mistral._lib


def load_status(path):
    with pytest.raises(mistral.MistralError) as e:
        mistral.Model(path)
    assert e.value.message  # a message explains it
    return e.value.status


def gguf_bytes(tensor_count=1, offset=0, dims=(32, 4), kv_count=1, truncate=None):
    """A tiny GGUF v3 file: one metadata string and one F32 tensor (fields can be made to lie)."""
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    out = b"GGUF" + struct.pack("<IQQ", 3, tensor_count, kv_count)
    out += s("general.architecture") + struct.pack("<I", 8) + s("llama")
    out += s("token_embd.weight") + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
    out += struct.pack("<IQ", 0, offset)
    out += b"\0" * ((32 - len(out) % 32) % 32)
    out += b"\0" * min(4 * dims[0] * dims[1], 4096)  # a lying shape gets only 4 KiB of data
    return out[:truncate] if truncate else out


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_missing_file():
    assert load_status("/nonexistent/model.gguf") == mistral.ERR_IO


def test_directory_is_not_a_model(tmp_path):
    with pytest.raises(mistral.MistralError) as e:
        mistral.Model(str(tmp_path))
    assert e.value.status == mistral.ERR_FORMAT and "config.json" in e.value.message


def test_empty_file(tmp_path):
    assert load_status(write(tmp_path, "empty.gguf", b"")) == mistral.ERR_FORMAT


def test_not_gguf(tmp_path):
    assert load_status(write(tmp_path, "text.gguf", b"hello world, not a model")) == mistral.ERR_FORMAT


def test_truncated_header_of_real_model(tmp_path):
    with open(MODEL_PATH, "rb") as f:
        head = f.read(100_000)
    assert load_status(write(tmp_path, "trunc.gguf", head)) == mistral.ERR_FORMAT


def test_truncated_tensor_data_of_real_model(tmp_path):
    with open(MODEL_PATH, "rb") as f:
        head = f.read(20_000_000)
    p = write(tmp_path, "trunc-data.gguf", head)
    with pytest.raises(mistral.MistralError) as e:
        mistral.Model(p)
    assert e.value.status == mistral.ERR_FORMAT and "outside the file" in e.value.message


def test_synthetic_gguf_is_parsed(tmp_path):
    # the well-formed synthetic file fails later, for a missing tokenizer: proves the corrupt cases below are caught
    # by the reader itself
    with pytest.raises(mistral.MistralError) as e:
        mistral.Model(write(tmp_path, "ok.gguf", gguf_bytes()))
    assert e.value.status == mistral.ERR_FORMAT and "tokenizer" in e.value.message


@pytest.mark.parametrize("kwargs,needle", [
    (dict(tensor_count=1 << 40), "tensor_count"),
    (dict(kv_count=1 << 50), "kv_count"),
    (dict(offset=1 << 40), "token_embd.weight"),
    (dict(offset=7), "aligned"),
    (dict(dims=(32, 1 << 38)), "token_embd.weight"),
    (dict(truncate=60), "truncated"),
])
def test_corrupt_gguf_fields(tmp_path, kwargs, needle):
    p = write(tmp_path, "bad.gguf", gguf_bytes(**kwargs))
    with pytest.raises(mistral.MistralError) as e:
        mistral.Model(p)
    assert e.value.status == mistral.ERR_FORMAT
    assert needle in e.value.message


def test_null_pointers(model, session):
    handle = ctypes.c_void_p()
    assert lib.mistral_model_load(None, None, ctypes.byref(handle)) == mistral.ERR_INVALID_ARGUMENT
    assert b"path" in lib.mistral_last_error()
    assert lib.mistral_model_load(MODEL_PATH.encode(), None, None) == mistral.ERR_INVALID_ARGUMENT
    n = ctypes.c_size_t()
    assert lib.mistral_tokenize(None, b"hi", 2, 0, None, 0, ctypes.byref(n)) == mistral.ERR_INVALID_ARGUMENT
    assert lib.mistral_tokenize(model.handle, None, 5, 0, None, 0, ctypes.byref(n)) == mistral.ERR_INVALID_ARGUMENT
    assert lib.mistral_tokenize(model.handle, b"hi", 2, 0, None, 0, None) == mistral.ERR_INVALID_ARGUMENT
    assert lib.mistral_eval(session.handle, None, 3, None) == mistral.ERR_INVALID_ARGUMENT
    assert lib.mistral_generate(None, None, 0, None, mistral._TOKEN_CALLBACK(), None) == mistral.ERR_INVALID_ARGUMENT
    session_out = ctypes.c_void_p()
    assert lib.mistral_session_create(None, None, ctypes.byref(session_out)) == mistral.ERR_INVALID_ARGUMENT
    lib.mistral_model_free(None)  # no-ops
    lib.mistral_session_free(None)
    assert lib.mistral_model_n_vocab(None) == 0


def test_bad_struct_size(model):
    params = mistral._SessionParams()
    params.struct_size = 0
    out = ctypes.c_void_p()
    assert lib.mistral_session_create(model.handle, ctypes.byref(params), ctypes.byref(out)) == mistral.ERR_INVALID_ARGUMENT
    assert b"struct_size" in lib.mistral_last_error()


def test_invalid_utf8(model):
    with pytest.raises(mistral.MistralError) as e:
        model.tokenize(b"abc\xff\xfe")
    assert e.value.status == mistral.ERR_INVALID_ARGUMENT


def test_buffer_too_small(model):
    n = ctypes.c_size_t()
    buf = (ctypes.c_int32 * 1)()
    rc = lib.mistral_tokenize(model.handle, b"Hello, world!", 13, 0, buf, 1, ctypes.byref(n))
    assert rc == mistral.ERR_BUFFER_TOO_SMALL and n.value == 4


def test_token_out_of_range(model, session):
    with pytest.raises(mistral.MistralError) as e:
        session.eval([1, 49152])
    assert e.value.status == mistral.ERR_INVALID_ARGUMENT
    assert session.n_past == 0  # nothing was appended
    with pytest.raises(mistral.MistralError):
        model.detokenize([-1])


def test_context_overflow_during_generation(model):
    with mistral.Session(model, n_ctx=24, threads=2) as s:
        with pytest.raises(mistral.MistralError) as e:
            s.generate(CHAT_PROMPT, temperature=0, ignore_eos=True, max_tokens=100)
        assert e.value.status == mistral.ERR_CONTEXT_FULL
        assert e.value.text.startswith("The capital of France is Paris.")
        assert s.n_past == 24 and s.last_stop_reason == "context_full"
        # the session stays usable
        s.reset()
        assert s.generate(CHAT_PROMPT, temperature=0) == "The capital of France is Paris."


def test_prompt_longer_than_context(model):
    with mistral.Session(model, n_ctx=8, threads=1) as s:
        with pytest.raises(mistral.MistralError) as e:
            s.generate(CHAT_PROMPT, temperature=0)
        assert e.value.status == mistral.ERR_CONTEXT_FULL
        assert s.n_past == 0


def test_bad_generate_params(session):
    for kwargs in (dict(temperature=-1.0), dict(top_p=0.0), dict(top_k=-3), dict(repeat_penalty=0.0)):
        with pytest.raises(mistral.MistralError) as e:
            session.generate(CHAT_PROMPT, **kwargs)
        assert e.value.status == mistral.ERR_INVALID_ARGUMENT


def test_vocab_only_model_cannot_create_session():
    m = mistral.Model(MODEL_PATH, vocab_only=True)
    assert m.tokenize("Hello, world!") == [19556, 28, 905, 17]
    with pytest.raises(mistral.MistralError) as e:
        mistral.Session(m)
    assert e.value.status == mistral.ERR_INVALID_ARGUMENT


# ---- safetensors and tekken.json ------------------------------------------------------------------------------

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fixtures", "tiny-s")


def hf_folder(tmp_path, safetensors_bytes):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_bytes(open(os.path.join(TINY, "hf", "config.json"), "rb").read())
    (folder / "model.safetensors").write_bytes(safetensors_bytes)
    return str(folder)


def safetensors_bytes(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


@pytest.mark.parametrize("blob,needle", [
    (struct.pack("<Q", 1 << 40) + b"{}", "header length"),
    (safetensors_bytes(b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]'), "invalid JSON"),
    (safetensors_bytes(b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4096]}}', b"\0" * 8), "outside"),
    (safetensors_bytes(b'{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', b"\0" * 8), "bytes for"),
    (safetensors_bytes(b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', b"\0" * 8), "embed_tokens"),
])
def test_corrupt_safetensors(tmp_path, blob, needle):
    folder = hf_folder(tmp_path, blob)
    with pytest.raises(mistral.MistralError) as e:
        mistral.Model(folder, tokenizer_path=os.path.join(TINY, "tokenizer", "tekken.json"))
    assert e.value.status == mistral.ERR_FORMAT
    assert needle in e.value.message


def test_truncated_real_safetensors(tmp_path):
    data = open(os.path.join(TINY, "hf", "model.safetensors"), "rb").read()
    folder = hf_folder(tmp_path, data[: len(data) // 2])
    with pytest.raises(mistral.MistralError) as e:
        mistral.Model(folder, tokenizer_path=os.path.join(TINY, "tokenizer", "tekken.json"))
    assert e.value.status == mistral.ERR_FORMAT and "outside" in e.value.message


def test_folder_without_tokenizer(tmp_path):
    folder = hf_folder(tmp_path, open(os.path.join(TINY, "hf", "model.safetensors"), "rb").read())
    with pytest.raises(mistral.MistralError) as e:
        mistral.Model(folder)
    assert e.value.status == mistral.ERR_FORMAT and "tekken.json" in e.value.message


@pytest.mark.parametrize("text", ['{"config": {}}', '{"vocab": [], "config": {"pattern": 1}}', '{', '[1, 2]'])
def test_malformed_tekken_json(tmp_path, text):
    p = tmp_path / "tekken.json"
    p.write_text(text)
    with pytest.raises(mistral.MistralError) as e:
        mistral.Model(str(p))
    assert e.value.status in (mistral.ERR_FORMAT, mistral.ERR_UNSUPPORTED)


def test_absurd_sizes(model, session):
    n = ctypes.c_size_t()
    huge = ctypes.c_size_t(-5).value  # a negative length cast to size_t
    assert lib.mistral_tokenize(model.handle, b"hi", huge, 0, None, 0, ctypes.byref(n)) == mistral.ERR_INVALID_ARGUMENT
    ids = (ctypes.c_int32 * 1)(1)
    assert lib.mistral_eval(session.handle, ids, huge, None) == mistral.ERR_INVALID_ARGUMENT
    assert lib.mistral_detokenize(model.handle, ids, huge, 0, None, 0, ctypes.byref(n)) == mistral.ERR_INVALID_ARGUMENT
    assert session.n_past == 0


def test_empty_outputs(model):
    # empty token lists and zero-length texts work with and without a buffer
    n = ctypes.c_size_t(7)
    buf = ctypes.create_string_buffer(8)
    assert lib.mistral_detokenize(model.handle, None, 0, 0, buf, 8, ctypes.byref(n)) == mistral.OK and n.value == 0
    assert buf.value == b""
    assert lib.mistral_tokenize(model.handle, None, 0, 0, None, 0, ctypes.byref(n)) == mistral.OK and n.value == 0
    assert model.detokenize([]) == "" and model.tokenize("") == []
