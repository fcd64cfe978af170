"""Thin ctypes binding of libnormjit for Python and PyTorch.

    import torch, normjit
    y = normjit.rms_norm(x, weight, eps=1e-6)          # torch tensors, current stream
    y = normjit.layer_norm(x, weight, bias, eps=1e-5)

Raw device pointers work too (normjit.rms_norm_ptr / layer_norm_ptr). Errors
raise normjit.NormjitError carrying the library's status and message.

The library is found by library_path() in _library.py: $NORMJIT_LIBRARY,
the copy installed inside this package, a build folder of this source tree,
then the system's library path.
"""
import ctypes
import threading

from ._library import library_path

__all__ = [
    "NormjitError", "Context", "rms_norm", "layer_norm", "rms_norm_ptr", "layer_norm_ptr",
    "prepare", "version", "F32", "F16", "BF16", "RMSNORM", "LAYERNORM",
]

F32, F16, BF16 = 1, 2, 3
RMSNORM, LAYERNORM = 1, 2
_WEIGHT_PLUS_ONE = 0x1


class NormjitError(RuntimeError):
    """A normjit call failed: .status (negative int), .name and the library's message."""

    def __init__(self, status, name, message):
        super().__init__(f"{name}: {message}")
        self.status = status
        self.name = name
        self.message = message


class _NormArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
        ("rows", ctypes.c_int64), ("hidden", ctypes.c_int64),
        ("x", ctypes.c_void_p), ("y", ctypes.c_void_p),
        ("x_row_stride", ctypes.c_int64), ("y_row_stride", ctypes.c_int64),
        ("weight", ctypes.c_void_p), ("bias", ctypes.c_void_p),
        ("rstd", ctypes.c_void_p), ("mean", ctypes.c_void_p),
        ("x_dtype", ctypes.c_int32), ("y_dtype", ctypes.c_int32),
        ("weight_dtype", ctypes.c_int32), ("eps", ctypes.c_float),
    ]


_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)


class _CtxOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
        ("cache_dir", ctypes.c_char_p), ("tuning_file", ctypes.c_char_p),
        ("offline_arch", ctypes.c_int32), ("log_level", ctypes.c_int32),
        ("log", _LOG_FN), ("log_user", ctypes.c_void_p),
    ]


class _PrepareArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
        ("op", ctypes.c_int32), ("x_dtype", ctypes.c_int32), ("y_dtype", ctypes.c_int32),
        ("weight_dtype", ctypes.c_int32),
        ("hidden", ctypes.POINTER(ctypes.c_int64)), ("n_hidden", ctypes.c_size_t),
    ]


class _PrepareStats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("compiled", ctypes.c_uint32),
                ("from_disk", ctypes.c_uint32), ("in_memory", ctypes.c_uint32),
                ("not_cached", ctypes.c_uint32)]


_lib = None
_lib_lock = threading.Lock()


def _library():
    global _lib
    with _lib_lock:
        if _lib is None:
            lib = ctypes.CDLL(library_path())
            lib.normjit_ctx_create.argtypes = [ctypes.POINTER(ctypes.c_void_p),
                                               ctypes.POINTER(_CtxOptions)]
            lib.normjit_ctx_destroy.argtypes = [ctypes.c_void_p]
            lib.normjit_ctx_destroy.restype = None
            for fn in (lib.normjit_rmsnorm_fwd, lib.normjit_layernorm_fwd):
                fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(_NormArgs), ctypes.c_void_p]
            lib.normjit_prepare.argtypes = [ctypes.c_void_p, ctypes.POINTER(_PrepareArgs),
                                            ctypes.POINTER(_PrepareStats)]
            lib.normjit_last_error.restype = ctypes.c_char_p
            lib.normjit_status_name.restype = ctypes.c_char_p
            lib.normjit_status_name.argtypes = [ctypes.c_int]
            lib.normjit_version_string.restype = ctypes.c_char_p
            lib.normjit_ctx_cache_dir.restype = ctypes.c_char_p
            lib.normjit_ctx_cache_dir.argtypes = [ctypes.c_void_p]
            _lib = lib
        return _lib


def _check(status):
    if status != 0:
        lib = _library()
        raise NormjitError(status, lib.normjit_status_name(status).decode(),
                           lib.normjit_last_error().decode(errors="replace"))


def version():
    """The loaded library's version string."""
    return _library().normjit_version_string().decode()


def __getattr__(name):
    # normjit.__version__ is the loaded library's, read on first use, so the
    # package and the library cannot disagree.
    if name == "__version__":
        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Context:
    """A normjit context bound to the CUDA context current in this thread."""

    def __init__(self, cache_dir=None, tuning_file=None):
        lib = _library()
        opts = _CtxOptions()
        opts.struct_size = ctypes.sizeof(_CtxOptions)
        opts.log_level = 0  # warnings (to stderr if NORMJIT_LOG is set)
        self._keep = [cache_dir.encode() if cache_dir else None,
                      tuning_file.encode() if tuning_file else None]
        opts.cache_dir, opts.tuning_file = self._keep
        handle = ctypes.c_void_p()
        _check(lib.normjit_ctx_create(ctypes.byref(handle), ctypes.byref(opts)))
        self._handle = handle
        self._lib = lib

    @property
    def handle(self):
        return self._handle

    @property
    def cache_dir(self):
        d = self._lib.normjit_ctx_cache_dir(self._handle)
        return d.decode() if d else None

    def close(self):
        if self._handle:
            self._lib.normjit_ctx_destroy(self._handle)
            self._handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def launch(self, op, rows, hidden, x, y, x_dtype, y_dtype, weight=None, bias=None,
               weight_dtype=None, eps=1e-6, x_row_stride=0, y_row_stride=0, rstd=None,
               mean=None, stream=0, weight_plus_one=False):
        """Launch on raw device pointers (ints); stream is a CUstream handle (int)."""
        a = _NormArgs()
        a.struct_size = ctypes.sizeof(_NormArgs)
        a.flags = _WEIGHT_PLUS_ONE if weight_plus_one else 0
        a.rows, a.hidden = rows, hidden
        a.x, a.y = x, y
        a.x_row_stride, a.y_row_stride = x_row_stride, y_row_stride
        a.weight, a.bias, a.rstd, a.mean = weight, bias, rstd, mean
        a.x_dtype, a.y_dtype = x_dtype, y_dtype
        a.weight_dtype = weight_dtype if weight_dtype is not None else x_dtype
        a.eps = eps
        fn = self._lib.normjit_rmsnorm_fwd if op == RMSNORM else self._lib.normjit_layernorm_fwd
        _check(fn(self._handle, ctypes.byref(a), ctypes.c_void_p(stream)))

    def prepare(self, op, hidden_sizes, x_dtype, y_dtype=None, weight_dtype=None):
        """Compile and load the kernels for these hidden sizes ahead of time (before graph capture)."""
        sizes = (ctypes.c_int64 * len(hidden_sizes))(*hidden_sizes)
        p = _PrepareArgs()
        p.struct_size = ctypes.sizeof(_PrepareArgs)
        p.op = op
        p.x_dtype = x_dtype
        p.y_dtype = y_dtype or x_dtype
        p.weight_dtype = weight_dtype or x_dtype
        p.hidden, p.n_hidden = sizes, len(hidden_sizes)
        stats = _PrepareStats()
        stats.struct_size = ctypes.sizeof(_PrepareStats)
        _check(self._lib.normjit_prepare(self._handle, ctypes.byref(p), ctypes.byref(stats)))
        return {"compiled": stats.compiled, "from_disk": stats.from_disk,
                "in_memory": stats.in_memory}


def rms_norm_ptr(ctx, rows, hidden, x, y, dtype, weight=None, eps=1e-6, stream=0, **kw):
    ctx.launch(RMSNORM, rows, hidden, x, y, dtype, kw.pop("y_dtype", dtype), weight=weight,
               eps=eps, stream=stream, **kw)


def layer_norm_ptr(ctx, rows, hidden, x, y, dtype, weight=None, bias=None, eps=1e-5, stream=0,
                   **kw):
    ctx.launch(LAYERNORM, rows, hidden, x, y, dtype, kw.pop("y_dtype", dtype), weight=weight,
               bias=bias, eps=eps, stream=stream, **kw)


# ---------------------------------------------------------------------------
# PyTorch front end

_contexts = {}
_contexts_lock = threading.Lock()


def _torch():
    import torch
    return torch


def _dtype_code(dtype):
    torch = _torch()
    codes = {torch.float32: F32, torch.float16: F16, torch.bfloat16: BF16}
    if dtype not in codes:
        raise TypeError(f"normjit supports float32, float16 and bfloat16, not {dtype}")
    return codes[dtype]


def _context_for(device):
    """One Context per CUDA device, bound to PyTorch's (primary) context."""
    torch = _torch()
    index = device.index if device.index is not None else torch.cuda.current_device()
    with _contexts_lock:
        ctx = _contexts.get(index)
        if ctx is None:
            with torch.cuda.device(index):
                torch.cuda.synchronize()  # makes PyTorch's CUDA context current in this thread
                ctx = Context()
            _contexts[index] = ctx
        return ctx


def _rows_view(x):
    """(rows, row_stride) of x seen as rows of its last dimension, or None if not expressible."""
    if x.dim() == 0 or x.stride(-1) != 1:
        return None
    if x.dim() == 1:
        return 1, x.shape[0]
    for i in range(x.dim() - 2):
        if x.shape[i] > 1 and x.stride(i) != x.stride(i + 1) * x.shape[i + 1]:
            return None
    rows = 1
    for s in x.shape[:-1]:
        rows *= s
    return rows, x.stride(-2) if x.shape[-2] > 1 else x.shape[-1]


def _norm(op, x, weight, bias, eps, out, out_dtype, want_stats, weight_plus_one):
    torch = _torch()
    if not x.is_cuda:
        raise ValueError("normjit works on CUDA tensors")
    view = _rows_view(x)
    if view is None:
        x = x.contiguous()
        view = _rows_view(x)
    rows, x_stride = view
    hidden = x.shape[-1]
    if out is None:
        out = torch.empty(x.shape, dtype=out_dtype or x.dtype, device=x.device)
    out_view = _rows_view(out)
    if out_view is None or out.shape != x.shape:
        raise ValueError("out must have x's shape and a unit stride in its last dimension")
    params = [t for t in (weight, bias) if t is not None]
    for t in params:
        if t.shape != (hidden,) or not t.is_cuda or t.stride(-1) != 1:
            raise ValueError(f"weight and bias must be CUDA tensors of shape ({hidden},)")
    wdtype = params[0].dtype if params else x.dtype
    rstd = mean = None
    if want_stats:
        rstd = torch.empty(x.shape[:-1], dtype=torch.float32, device=x.device)
        if op == LAYERNORM:
            mean = torch.empty(x.shape[:-1], dtype=torch.float32, device=x.device)
    ctx = _context_for(x.device)
    ctx.launch(op, rows, hidden, x.data_ptr(), out.data_ptr(), _dtype_code(x.dtype),
               _dtype_code(out.dtype), weight=weight.data_ptr() if weight is not None else None,
               bias=bias.data_ptr() if bias is not None else None,
               weight_dtype=_dtype_code(wdtype), eps=eps, x_row_stride=x_stride,
               y_row_stride=out_view[1], rstd=rstd.data_ptr() if rstd is not None else None,
               mean=mean.data_ptr() if mean is not None else None,
               stream=torch.cuda.current_stream(x.device).cuda_stream,
               weight_plus_one=weight_plus_one)
    if want_stats:
        return (out, rstd) if op == RMSNORM else (out, mean, rstd)
    return out


def rms_norm(x, weight=None, eps=1e-6, out=None, out_dtype=None, return_rstd=False,
             weight_plus_one=False):
    """RMSNorm over the last dimension of a CUDA tensor, on the current stream.

    Returns y (and the fp32 per-row rstd with return_rstd=True). weight_plus_one
    scales by (1 + weight), as Gemma does.
    """
    return _norm(RMSNORM, x, weight, None, eps, out, out_dtype, return_rstd, weight_plus_one)


def layer_norm(x, weight=None, bias=None, eps=1e-5, out=None, out_dtype=None,
               return_stats=False):
    """LayerNorm over the last dimension; returns y (and fp32 mean, rstd with return_stats)."""
    return _norm(LAYERNORM, x, weight, bias, eps, out, out_dtype, return_stats, False)


def prepare(op, hidden_sizes, dtype, device=None):
    """Compile and load kernels ahead of time, e.g. before capturing a CUDA graph."""
    torch = _torch()
    device = torch.device(device or "cuda")
    code = _dtype_code(dtype)
    return _context_for(device).prepare(op, list(hidden_sizes), code, code, code)
