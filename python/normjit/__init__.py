"""normjit for Python: torch ops and modules over libnormjit.

    import torch, normjit
    y = normjit.rms_norm(x, weight, eps=1e-6)                 # CUDA tensors, current stream
    y, residual = normjit.fused_add_rms_norm(x, residual, weight)
    q, scales = normjit.rms_norm(x, weight, quant="fp8-token")
    normjit.prepare("rmsnorm", [4096], torch.bfloat16)        # before CUDA graph capture
    model = normjit.nn.RMSNorm(4096)                          # loads torch.nn.RMSNorm's state_dict
    normjit.hf.patch_model(hf_model)                          # a HuggingFace model's norms

The functions are torch.library ops (namespace `normjit`), so torch.compile
traces them and CUDA graphs capture them. Importing this package needs no
torch: the torch part (normjit.ops, nn, hf) loads on first use. Errors of the
library raise NormjitError with its status and message; bad arguments raise
ValueError or TypeError naming the argument.
"""
import importlib

from ._binding import (  # noqa: F401  (the C API, no torch needed)
    BF16, F16, F32, LAYERNORM, RMSNORM, ADD_RMSNORM, ADD_LAYERNORM, QK_RMSNORM, Context,
    NormjitError, version)

_OPS = ("rms_norm", "layer_norm", "fused_add_rms_norm", "fused_add_layer_norm", "qk_rms_norm",
        "prepare")
_SUBMODULES = ("ops", "nn", "hf")

__all__ = ["NormjitError", "Context", "version", "F32", "F16", "BF16", "RMSNORM", "LAYERNORM",
           "ADD_RMSNORM", "ADD_LAYERNORM", "QK_RMSNORM", *_OPS, *_SUBMODULES]


def __getattr__(name):
    if name == "__version__":  # the loaded library's, so the two cannot disagree
        return version()
    # The torch part is imported on first use, so that `import normjit` (and the
    # command-line tool) work without torch and without its import time.
    if name in _OPS:
        value = getattr(importlib.import_module(".ops", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module("." + name, __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups are plain attribute reads (the hot path)
    return value
