"""Builders for hostile model and image files: tiny-s with one metadata value changed (GGUF, HF, native, tekken.json)
and JPEGs made with libturbojpeg (a scan bomb, a truncated file that still ends in EOI)."""
import ctypes
import ctypes.util
import json
import os
import shutil
import struct

from conftest import FIXTURES

TINY = os.path.join(FIXTURES, "tiny-s")
TEKKEN = os.path.join(TINY, "tokenizer", "tekken.json")
TINY_GGUF = os.path.join(TINY, "gguf", "tiny-s-Q8_0.gguf")

# ---- GGUF ------------------------------------------------------------------------------------------------------
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        return s

    def value(self, t):
        if t in _SCALAR:
            return self.take(_SCALAR[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("<I"), self.take("<Q")
            return (et, [self.value(et) for _ in range(n)])
        raise ValueError(t)


def _pack_string(b):
    return struct.pack("<Q", len(b)) + b


def _pack_value(t, v):
    if t in _SCALAR:
        return struct.pack(_SCALAR[t], v)
    if t == 8:
        return _pack_string(v)
    et, items = v
    return struct.pack("<IQ", et, len(items)) + b"".join(_pack_value(et, x) for x in items)


def gguf_with(src, overrides):
    """The bytes of GGUF `src` with metadata keys replaced: overrides = {key: (type, value)}. Tensor data is kept."""
    data = open(src, "rb").read()
    r = _Reader(data)
    assert r.take("<I") == 0x46554747
    version, n_tensors, n_kv = r.take("<I"), r.take("<Q"), r.take("<Q")
    kvs = []
    for _ in range(n_kv):
        key = r.string()
        t = r.take("<I")
        kvs.append([key, t, r.value(t)])
    infos_start = r.pos
    for _ in range(n_tensors):
        r.string()
        n_dims = r.take("<I")
        r.pos += 8 * n_dims + 4 + 8
    infos = data[infos_start:r.pos]
    align = 32
    data_start = (r.pos + align - 1) // align * align
    for key, (t, v) in overrides.items():
        k = key.encode()
        for kv in kvs:
            if kv[0] == k:
                kv[1], kv[2] = t, v
                break
        else:
            kvs.append([k, t, v])
    out = struct.pack("<IIQQ", 0x46554747, version, n_tensors, len(kvs))
    out += b"".join(_pack_string(k) + struct.pack("<I", t) + _pack_value(t, v) for k, t, v in kvs)
    out += infos
    out += b"\0" * ((align - len(out) % align) % align)
    return out + data[data_start:]


def gguf_file(tmp_path, overrides, src=TINY_GGUF):
    p = tmp_path / "hostile.gguf"
    p.write_bytes(gguf_with(src, overrides))
    return str(p)


# ---- folders -----------------------------------------------------------------------------------------------------
def hf_folder(tmp_path, edit):
    """A copy of tiny-s's HF folder (weights linked, not copied) whose config.json went through edit(dict)."""
    folder = tmp_path / "hf"
    folder.mkdir()
    os.symlink(os.path.join(TINY, "hf", "model.safetensors"), folder / "model.safetensors")
    shutil.copy(TEKKEN, folder / "tekken.json")
    cfg = json.load(open(os.path.join(TINY, "hf", "config.json")))
    edit(cfg)
    (folder / "config.json").write_text(json.dumps(cfg).replace("Infinity", "1e999").replace("NaN", "1e999"))
    return str(folder)


def native_folder(tmp_path, edit):
    folder = tmp_path / "native"
    folder.mkdir()
    os.symlink(os.path.join(TINY, "native", "consolidated.safetensors"), folder / "consolidated.safetensors")
    shutil.copy(TEKKEN, folder / "tekken.json")
    params = json.load(open(os.path.join(TINY, "native", "params.json")))
    edit(params)
    (folder / "params.json").write_text(json.dumps(params).replace("Infinity", "1e999"))
    return str(folder)


def tekken_file(tmp_path, edit):
    tk = json.load(open(TEKKEN))
    edit(tk)
    p = tmp_path / "tekken.json"
    p.write_text(json.dumps(tk))
    return str(p)


# ---- JPEG (libturbojpeg through ctypes) ------------------------------------------------------------------------
def _turbojpeg():
    name = ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0"
    tj = ctypes.CDLL(name)
    tj.tjInitCompress.restype = ctypes.c_void_p
    tj.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_ulong),
                               ctypes.c_int, ctypes.c_int, ctypes.c_int]
    tj.tjFree.argtypes = [ctypes.c_void_p]
    tj.tjDestroy.argtypes = [ctypes.c_void_p]
    return tj


def jpeg(width, height, progressive=False, seed=1):
    """A JPEG of pseudo-random pixels (so the entropy-coded data is large), quality 90, 4:2:0."""
    tj = _turbojpeg()
    state = seed
    px = bytearray(width * height * 3)
    for i in range(0, len(px), 3):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        px[i], px[i + 1], px[i + 2] = state & 255, (state >> 8) & 255, ((i // 3) % width) & 255
    handle = tj.tjInitCompress()
    out, size = ctypes.c_void_p(), ctypes.c_ulong(0)
    flags = 16384 if progressive else 0  # TJFLAG_PROGRESSIVE
    rc = tj.tjCompress2(handle, bytes(px), width, 0, height, 0, ctypes.byref(out), ctypes.byref(size), 2, 90, flags)
    assert rc == 0
    data = ctypes.string_at(out, size.value)
    tj.tjFree(out)
    tj.tjDestroy(handle)
    return data


def jpeg_segments(data):
    """(marker, start, end) of each marker segment; an SOS segment runs to the next non-RST marker."""
    segs, i = [], 2
    while i < len(data) - 1:
        assert data[i] == 0xFF
        marker = data[i + 1]
        if marker == 0xD9:
            segs.append((marker, i, i + 2))
            break
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        end = i + 2 + length
        if marker == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] not in (0x00,) and not 0xD0 <= data[end + 1] <= 0xD7):
                end += 1
        segs.append((marker, i, end))
        i = end
    return segs


def scan_bomb(repeats=2000):
    """A progressive JPEG whose smallest scan is repeated `repeats` times (each repeat re-decodes the image)."""
    data = jpeg(144, 144, progressive=True)  # smallest scan ~80 bytes: ~165 KB in all
    segs = jpeg_segments(data)
    scans = [s for s in segs if s[0] == 0xDA]
    marker, a, b = min(scans, key=lambda s: s[2] - s[1])
    last_scan_end = scans[-1][2]
    return data[:last_scan_end] + data[a:b] * repeats + b"\xff\xd9"


def truncated_with_eoi():
    """A baseline JPEG cut in the middle of its entropy-coded data, with an EOI marker appended."""
    data = jpeg(96, 96)
    sos = [s for s in jpeg_segments(data) if s[0] == 0xDA][0]
    cut = sos[1] + (sos[2] - sos[1]) // 2
    return data[:cut] + b"\xff\xd9"


def pixel_scan_bomb():
    """A progressive JPEG whose frame header claims 10000 x 10000 pixels (the limit is 10^8) and which has 30 scans:
    3 * 10^9 pixel-scans, over the 2^31 decode budget."""
    data = bytearray(scan_bomb(30 - 10))
    for marker, a, b in jpeg_segments(bytes(data)):
        if marker == 0xC2:  # SOF2: length, precision, height, width
            data[a + 5:a + 9] = struct.pack(">HH", 10000, 10000)
    return bytes(data)
