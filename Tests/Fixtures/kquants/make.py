# Random K-quant (and Q5) blocks and their values as dequantized by the `gguf` package (ggml's own Python port): the
# independent reference for libmistral's Q4_K / Q5_K / Q6_K decoding. Regenerate with `python3 make.py` (pip install gguf).
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

rng = np.random.default_rng(7)
rows, cols = 6, 512
layouts = {"Q4_K": (144, [0, 2]), "Q5_K": (176, [0, 2]), "Q6_K": (210, [208]), "Q5_0": (22, [0]), "Q5_1": (24, [0, 2])}
for name, (block_bytes, half_offsets) in layouts.items():
    nb = rows * cols // (256 if name.endswith("_K") else 32)
    raw = rng.integers(0, 256, size=(nb, block_bytes), dtype=np.uint8)
    for off in half_offsets:  # finite, modest f16 scales
        raw[:, off:off + 2] = rng.uniform(0.001, 0.02, size=nb).astype(np.float16).view(np.uint8).reshape(nb, 2)
    deq = quants.dequantize(raw.reshape(rows, -1), getattr(T, name)).astype(np.float32)
    assert deq.shape == (rows, cols), deq.shape
    raw.tofile(f"{name}.blocks")
    deq.tofile(f"{name}.f32")
