"""Decoded images for vision models."""
from __future__ import annotations

import ctypes
import os
from typing import Any, Union

from ._args import _bytes_arg, _Handle, _int_arg, _path_arg, _U32
from ._capi import ERR_INVALID_ARGUMENT, MistralError, _check, _lib

class Image(_Handle):
    """A decoded image (packed RGB8). Build one with Image.open(path), Image.from_bytes(png_or_jpeg),
    Image.from_rgb(pixels, width, height), or Image.of(x) for a path, bytes, a Pillow image or a numpy array."""

    _kind = "image"
    _free = staticmethod(lambda h: _lib.mistral_image_free(h))

    def __init__(self, handle: ctypes.c_void_p):
        self._handle = handle

    @classmethod
    def _make(cls, call: str, *args: Any) -> "Image":
        handle = ctypes.c_void_p()
        _check(getattr(_lib, call)(*args, ctypes.byref(handle)), call)
        return cls(handle)

    @classmethod
    def open(cls, path: Union[str, "os.PathLike[str]"]) -> "Image":
        """Decodes a PNG or JPEG file."""
        return cls._make("mistral_image_load_file", _path_arg("path", path))

    @classmethod
    def from_bytes(cls, data: bytes) -> "Image":
        """Decodes PNG or JPEG bytes held in memory."""
        data = _bytes_arg("data", data)
        return cls._make("mistral_image_load_memory", data, len(data))

    @classmethod
    def from_rgb(cls, pixels: bytes, width: int, height: int) -> "Image":
        """Wraps a copy of packed RGB8 pixels (width * height * 3 bytes)."""
        data = _bytes_arg("pixels", pixels)
        width, height = _int_arg("width", width, *_U32), _int_arg("height", height, *_U32)
        if len(data) != width * height * 3:
            raise MistralError(ERR_INVALID_ARGUMENT, f"{len(data)} bytes for a {width}x{height} RGB image")
        return cls._make("mistral_image_from_rgb", data, width, height)

    @classmethod
    def of(cls, x: Any) -> "Image":
        """An Image from a path, PNG/JPEG bytes, a Pillow image, a numpy (H, W, 3) or (H, W) uint8 array, or an
        Image (returned as it is)."""
        if isinstance(x, Image):
            return x
        if isinstance(x, (str, os.PathLike)):
            return cls.open(x)
        if isinstance(x, (bytes, bytearray, memoryview)):
            return cls.from_bytes(bytes(x))
        if hasattr(x, "convert") and hasattr(x, "size") and hasattr(x, "tobytes"):  # Pillow, alpha onto white
            if x.mode in ("RGBA", "LA", "P", "PA"):
                rgba = x.convert("RGBA")
                white = rgba.copy()
                white.paste((255, 255, 255, 255), (0, 0) + rgba.size)
                white.alpha_composite(rgba)
                x = white
            rgb = x.convert("RGB")
            return cls.from_rgb(rgb.tobytes(), rgb.size[0], rgb.size[1])
        if hasattr(x, "shape") and hasattr(x, "dtype"):  # numpy (H, W, 3) uint8, or (H, W) grayscale
            import numpy as np
            a = np.ascontiguousarray(x)
            if a.ndim == 2:
                a = np.repeat(a[:, :, None], 3, axis=2)
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
                raise MistralError(ERR_INVALID_ARGUMENT, "numpy images must be (H, W, 3) or (H, W) uint8")
            return cls.from_rgb(a.tobytes(), a.shape[1], a.shape[0])
        raise MistralError(ERR_INVALID_ARGUMENT, f"cannot make an image of {type(x).__name__}")

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(_lib.mistral_image_width(self.handle))

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(_lib.mistral_image_height(self.handle))

    def rgb(self) -> bytes:
        """The pixels, packed RGB8, row-major (width * height * 3 bytes)."""
        return ctypes.string_at(_lib.mistral_image_rgb(self.handle), self.width * self.height * 3)
