"""ctypes binding of libnormjit's C API (include/normjit.h). Needs no torch.

It loads the library, mirrors the header's constants and argument structs,
turns failed statuses into NormjitError, and keeps one normjit context per
CUDA device, bound to that device's primary context (the one PyTorch uses):
the torch ops (native or ctypes), normjit.prepare() and this module all use
those same contexts, so kernels prepared before a CUDA graph capture are the
ones the captured launches find.

Library messages go to the Python logger "normjit" (a NullHandler keeps it
silent by default, as the C library is); NORMJIT_LOG=warn|info|debug adds a
handler printing them to stderr at that level.
"""
import ctypes
import functools
import glob
import importlib
import logging
import os
import sys
import threading

# ---------------------------------------------------------------------------
# Constants of include/normjit.h

F32, F16, BF16, FP8_E4M3, FP8_E5M2, INT8 = 1, 2, 3, 4, 5, 6
RMSNORM, LAYERNORM, ADD_RMSNORM, ADD_LAYERNORM, QK_RMSNORM = 1, 2, 3, 4, 5
QUANT_NONE, QUANT_TENSOR, QUANT_TOKEN, QUANT_GROUP = 0, 1, 2, 3
CAST_NONE, CAST_LLAMA, CAST_GEMMA = 0, 1, 2
NORM_WEIGHT_PLUS_ONE = 0x1
NORM_SCALES_COLUMN_MAJOR = 0x2
NORM_SCALES_POW2 = 0x4
NORM_PDL = 0x8
PREPARE_ALL_ALIGNMENTS = 0x1
LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG = 1, 2, 3, 4
ECONTEXT = -7

# The Python names of normjit_cast (the C API has no parser for them).
CASTS = {"none": CAST_NONE, "llama": CAST_LLAMA, "gemma": CAST_GEMMA}


class NormjitError(RuntimeError):
    """A normjit call failed: .status (negative int), .name and the library's message."""

    def __init__(self, status, name, message):
        super().__init__(f"{name}: {message}")
        self.status = status
        self.name = name
        self.message = message


class _NormArgs(ctypes.Structure):
    """normjit_norm_args, version 0.2."""
    _fields_ = [
        ("struct_size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
        ("rows", ctypes.c_int64), ("hidden", ctypes.c_int64),
        ("x", ctypes.c_void_p), ("y", ctypes.c_void_p),
        ("x_row_stride", ctypes.c_int64), ("y_row_stride", ctypes.c_int64),
        ("weight", ctypes.c_void_p), ("bias", ctypes.c_void_p),
        ("rstd", ctypes.c_void_p), ("mean", ctypes.c_void_p),
        ("x_dtype", ctypes.c_int32), ("y_dtype", ctypes.c_int32),
        ("weight_dtype", ctypes.c_int32), ("eps", ctypes.c_float),
        ("residual", ctypes.c_void_p), ("residual_out", ctypes.c_void_p),
        ("residual_row_stride", ctypes.c_int64), ("residual_out_row_stride", ctypes.c_int64),
        ("residual_dtype", ctypes.c_int32),
        ("quant", ctypes.c_int32), ("scale", ctypes.c_void_p), ("scales", ctypes.c_void_p),
        ("scales_stride", ctypes.c_int64), ("group_size", ctypes.c_int32),
        ("min_scale", ctypes.c_float),
        ("cast", ctypes.c_int32), ("reserved0", ctypes.c_int32),
        ("heads", ctypes.c_int64), ("x_head_stride", ctypes.c_int64),
        ("y_head_stride", ctypes.c_int64),
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
    """normjit_prepare_args, version 0.2."""
    _fields_ = [
        ("struct_size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
        ("op", ctypes.c_int32), ("x_dtype", ctypes.c_int32), ("y_dtype", ctypes.c_int32),
        ("weight_dtype", ctypes.c_int32),
        ("hidden", ctypes.POINTER(ctypes.c_int64)), ("n_hidden", ctypes.c_size_t),
        ("residual_dtype", ctypes.c_int32), ("quant", ctypes.c_int32),
        ("group_size", ctypes.c_int32), ("cast", ctypes.c_int32),
        ("norm_flags", ctypes.c_uint32), ("reserved0", ctypes.c_int32),
    ]


class _PrepareStats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("compiled", ctypes.c_uint32),
                ("from_disk", ctypes.c_uint32), ("in_memory", ctypes.c_uint32),
                ("not_cached", ctypes.c_uint32)]


# ---------------------------------------------------------------------------
# Finding and loading the library

def library_path():
    """The libnormjit to load: the package's own lookup (normjit._library) where it
    exists, else $NORMJIT_LIBRARY, a build folder of this source tree, the system's path."""
    try:
        _library = importlib.import_module(".._library", __name__)
    except ModuleNotFoundError as e:
        if e.name != __package__ + "._library":
            raise
    else:
        return _library.library_path()
    env = os.environ.get("NORMJIT_LIBRARY")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for build in sorted(glob.glob(os.path.join(root, "build*", "src", "libnormjit.so.*"))):
        return build
    import ctypes.util  # only here: 0.4 ms to import
    return ctypes.util.find_library("normjit") or "libnormjit.so.0"


_lib = None
_lib_lock = threading.Lock()


def library():
    """The loaded libnormjit (a ctypes.CDLL with argument types set)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is None:
            lib = ctypes.CDLL(library_path())
            c_int, c_void_p, c_char_p, c_int32_p = (ctypes.c_int, ctypes.c_void_p,
                                                    ctypes.c_char_p, ctypes.POINTER(ctypes.c_int32))
            lib.normjit_ctx_create.argtypes = [ctypes.POINTER(c_void_p), ctypes.POINTER(_CtxOptions)]
            lib.normjit_ctx_destroy.argtypes = [c_void_p]
            lib.normjit_ctx_destroy.restype = None
            lib.normjit_norm.argtypes = [c_void_p, c_int, ctypes.POINTER(_NormArgs), c_void_p]
            lib.normjit_prepare.argtypes = [c_void_p, ctypes.POINTER(_PrepareArgs),
                                            ctypes.POINTER(_PrepareStats)]
            lib.normjit_quant_from_name.argtypes = [c_char_p, c_int32_p, c_int32_p, c_int32_p]
            lib.normjit_op_from_name.argtypes = [c_char_p]
            for fn in (lib.normjit_op_name, lib.normjit_dtype_name, lib.normjit_status_name):
                fn.argtypes = [c_int]
                fn.restype = c_char_p
            lib.normjit_last_error.restype = c_char_p
            lib.normjit_version_string.restype = c_char_p
            lib.normjit_ctx_cache_dir.restype = c_char_p
            lib.normjit_ctx_cache_dir.argtypes = [c_void_p]
            _lib = lib
    return _lib


def loaded_library_path():
    """The file of the libnormjit this process loaded (to link the native torch ops to it)."""
    return _path_of(library().normjit_version)


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _path_of(symbol):
    libc = ctypes.CDLL(None)
    libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    info = _DlInfo()
    if not libc.dladdr(ctypes.cast(symbol, ctypes.c_void_p), ctypes.byref(info)):
        return os.path.realpath(library_path())
    return os.path.realpath(info.dli_fname.decode())


def raise_error(status, message=None):
    """Raise NormjitError for a failed status (the thread's last error by default)."""
    lib = library()
    if message is None:
        message = lib.normjit_last_error().decode(errors="replace")
    raise NormjitError(status, lib.normjit_status_name(status).decode(), message)


def check(status):
    if status != 0:
        raise_error(status)


def version():
    """The loaded library's version string."""
    return library().normjit_version_string().decode()


@functools.lru_cache(maxsize=None)
def quant_from_name(name):
    """(y_dtype, quant, group_size) of a --quant name, from normjit_quant_from_name."""
    if name == "none":
        return 0, QUANT_NONE, 0
    out = [ctypes.c_int32() for _ in range(3)]
    status = library().normjit_quant_from_name(name.encode(), *(ctypes.byref(o) for o in out))
    check(status)
    return tuple(o.value for o in out)


def op_from_name(name):
    """The normjit_op of a CLI name ("rmsnorm", "add_layernorm", ...), or 0."""
    return library().normjit_op_from_name(name.encode())


def op_name(op):
    name = library().normjit_op_name(op)
    return name.decode() if name else None


# ---------------------------------------------------------------------------
# Logging

logger = logging.getLogger("normjit")
logger.addHandler(logging.NullHandler())
_LEVELS = {LOG_ERROR: logging.ERROR, LOG_WARN: logging.WARNING, LOG_INFO: logging.INFO,
           LOG_DEBUG: logging.DEBUG}


def _env_log_level():
    """The Python level NORMJIT_LOG asks for, read as the library reads it, or None."""
    env = os.environ.get("NORMJIT_LOG", "")
    if not env or env == "0":
        return None
    return {"error": logging.ERROR, "info": logging.INFO,
            "debug": logging.DEBUG}.get(env.lower(), logging.WARNING)


def _setup_env_logging():
    level = _env_log_level()
    if level is None:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("normjit: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


_setup_env_logging()


def _forward_log(user, level, message):
    logger.log(_LEVELS.get(level, logging.ERROR), "%s", message.decode(errors="replace"))


_log_callback = _LOG_FN(_forward_log)  # kept alive for the process's lifetime


def _library_log_level():
    """The most verbose level the logger takes, so the library formats nothing it drops."""
    for code in (LOG_DEBUG, LOG_INFO, LOG_WARN):
        if logger.isEnabledFor(_LEVELS[code]):
            return code
    return LOG_ERROR


# ---------------------------------------------------------------------------
# Contexts

class Context:
    """A normjit context: bound to the CUDA context current in this thread, or,
    with offline_arch=90 say, a compile-only context that needs no GPU."""

    def __init__(self, cache_dir=None, tuning_file=None, offline_arch=0, pdl=False):
        lib = library()
        opts = _CtxOptions()
        opts.struct_size = ctypes.sizeof(_CtxOptions)
        opts.flags = 0x2 if pdl else 0  # NORMJIT_CTX_PDL
        self._keep = [cache_dir.encode() if cache_dir else None,
                      tuning_file.encode() if tuning_file else None]
        opts.cache_dir, opts.tuning_file = self._keep
        opts.offline_arch = offline_arch
        opts.log_level = _library_log_level()
        opts.log = _log_callback
        handle = ctypes.c_void_p()
        check(lib.normjit_ctx_create(ctypes.byref(handle), ctypes.byref(opts)))
        self._handle = handle
        self._lib = lib

    @property
    def handle(self):
        """The normjit_ctx pointer as an int."""
        return self._handle.value

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

    def norm(self, op, args, stream=0):
        """normjit_norm with a filled _NormArgs; stream is a CUstream handle (int)."""
        check(self._lib.normjit_norm(self._handle, op, ctypes.byref(args),
                                     ctypes.c_void_p(stream)))

    def prepare(self, op, hidden_sizes, x_dtype, y_dtype=None, weight_dtype=None,
                residual_dtype=0, quant=QUANT_NONE, group_size=0, cast=CAST_NONE,
                norm_flags=0, flags=0):
        """normjit_prepare for these hidden sizes; returns its counts as a dict."""
        sizes = (ctypes.c_int64 * len(hidden_sizes))(*hidden_sizes)
        p = _PrepareArgs()
        p.struct_size = ctypes.sizeof(_PrepareArgs)
        p.flags = flags
        p.op = op
        p.x_dtype = x_dtype
        p.y_dtype = y_dtype or x_dtype
        p.weight_dtype = weight_dtype or x_dtype
        p.hidden, p.n_hidden = sizes, len(hidden_sizes)
        p.residual_dtype = residual_dtype
        p.quant, p.group_size, p.cast, p.norm_flags = quant, group_size, cast, norm_flags
        stats = _PrepareStats()
        stats.struct_size = ctypes.sizeof(_PrepareStats)
        check(self._lib.normjit_prepare(self._handle, ctypes.byref(p), ctypes.byref(stats)))
        return {"compiled": stats.compiled, "from_disk": stats.from_disk,
                "in_memory": stats.in_memory, "not_cached": stats.not_cached}


class _Driver:
    """The few CUDA driver calls that bind a thread to a device's primary context.
    None of them has a _v2 variant, so plain symbol lookup is exact."""

    def __init__(self):
        cu = ctypes.CDLL(os.environ.get("NORMJIT_CUDA_DRIVER") or "libcuda.so.1")
        p = ctypes.POINTER
        self._fns = {}
        for name, args in (("cuInit", [ctypes.c_uint]),
                           ("cuDeviceGet", [p(ctypes.c_int), ctypes.c_int]),
                           ("cuDevicePrimaryCtxRetain", [p(ctypes.c_void_p), ctypes.c_int]),
                           ("cuCtxGetCurrent", [p(ctypes.c_void_p)]),
                           ("cuCtxSetCurrent", [ctypes.c_void_p])):
            fn = getattr(cu, name)
            fn.argtypes, fn.restype = args, ctypes.c_int
            self._fns[name] = fn
        self._get_error_name = cu.cuGetErrorName
        self._get_error_name.argtypes = [ctypes.c_int, p(ctypes.c_char_p)]
        self._call("cuInit", 0)
        self._primary = {}

    def _call(self, name, *args):
        res = self._fns[name](*args)
        if res != 0:
            text = ctypes.c_char_p()
            self._get_error_name(res, ctypes.byref(text))
            raise NormjitError(-9, "NORMJIT_EDRIVER",
                               f"{name} failed: {(text.value or b'?').decode()} ({res})")

    def primary(self, index):
        """Device `index`'s primary context (retained once, kept for the process)."""
        ctx = self._primary.get(index)
        if ctx is None:
            dev = ctypes.c_int()
            self._call("cuDeviceGet", ctypes.byref(dev), index)
            handle = ctypes.c_void_p()
            self._call("cuDevicePrimaryCtxRetain", ctypes.byref(handle), dev)
            ctx = self._primary[index] = handle.value
        return ctx

    def current(self):
        handle = ctypes.c_void_p()
        self._call("cuCtxGetCurrent", ctypes.byref(handle))
        return handle.value

    def set_current(self, ctx):
        self._call("cuCtxSetCurrent", ctypes.c_void_p(ctx))


_driver = None
_contexts = {}
_contexts_lock = threading.RLock()


def driver():
    global _driver
    with _contexts_lock:
        if _driver is None:
            _driver = _Driver()
        return _driver


class bound_to_device:
    """Within the block, device `index`'s primary context is current in this thread.
    A thread that had no context keeps it afterwards (as the CUDA runtime would have
    made it current anyway); one that had another gets it back. No synchronization,
    no allocation."""

    def __init__(self, index):
        self._index = index

    def __enter__(self):
        d = driver()
        self._previous = d.current()
        self._primary = d.primary(self._index)
        if self._previous != self._primary:
            d.set_current(self._primary)
        return self

    def __exit__(self, *exc):
        if self._previous and self._previous != self._primary:
            driver().set_current(self._previous)


def device_context(index):
    """The normjit Context of CUDA device `index`, created on first use."""
    ctx = _contexts.get(index)
    if ctx is not None:
        return ctx
    with _contexts_lock:
        ctx = _contexts.get(index)
        if ctx is None:
            with bound_to_device(index):
                # NORMJIT_PDL=1: the torch ops launch with programmatic dependent launch.
                ctx = Context(pdl=os.environ.get("NORMJIT_PDL", "0") == "1")
            _contexts[index] = ctx
    return ctx


def context_handle(index):
    """device_context(index) as a normjit_ctx pointer (an int), for the native ops."""
    return device_context(index).handle


def make_current(index):
    """Make device `index`'s primary context current in this thread (the native ops
    call this when a launch finds another context, or none, current)."""
    driver().set_current(driver().primary(index))
