"""normjit's torch ops and the Python functions that call them.

The ops live in the torch.library namespace `normjit`; their schemas and fake
implementations are defined here once. Their CUDA and autograd kernels are
native (csrc/ops.cpp, built on first use, see _native.py); where that
extension cannot be built, the same kernels written here in Python over
ctypes are registered instead (a warning says so once).

Two forms of each operation:

- functional ops (`rms_norm`, `layer_norm`, `fused_add_rms_norm`,
  `fused_add_layer_norm`, `qk_rms_norm`) allocate their results and are
  differentiable (the backward is `norm_backward`, written in PyTorch
  operations);
- out ops (the same names with `_out`) write into given tensors: `out=`,
  the residual updated in place, statistics, quantized codes and scales.
  They are not differentiable (quantized outputs never are).

The Python functions (rms_norm, fused_add_rms_norm, ...) pick the form and
allocate what an out op writes; the hot path (a plain norm, no out=) calls
the functional op directly.
"""
import ctypes
import itertools
import os
import sys
import warnings

import torch

from . import _binding as B

_DTYPES = {torch.float32: B.F32, torch.float16: B.F16, torch.bfloat16: B.BF16}
_QUANT_DTYPES = {B.FP8_E4M3: torch.float8_e4m3fn, B.FP8_E5M2: torch.float8_e5m2,
                 B.INT8: torch.int8}
_CODES = {**_DTYPES, **{t: c for c, t in _QUANT_DTYPES.items()}}

# ---------------------------------------------------------------------------
# Schemas

_lib = torch.library.Library("normjit", "DEF")

_EPILOGUE = "bool weight_plus_one=False, int cast=0"
_QUANT = ('Tensor? scale=None, str quant="none", float min_scale=0., '
          'bool column_major_scales=False, bool pow2_scales=False, ' + _EPILOGUE)
_SCHEMAS = {
    "rms_norm": "(Tensor x, Tensor? weight, float eps, ScalarType? out_dtype=None, "
                f"{_EPILOGUE}) -> Tensor",
    "layer_norm": "(Tensor x, Tensor? weight, Tensor? bias, float eps, "
                  f"ScalarType? out_dtype=None, {_EPILOGUE}) -> Tensor",
    "fused_add_rms_norm": "(Tensor x, Tensor residual, Tensor? weight, float eps, "
                          f"ScalarType? out_dtype=None, {_EPILOGUE}) -> (Tensor, Tensor)",
    "fused_add_layer_norm": "(Tensor x, Tensor residual, Tensor? weight, Tensor? bias, "
                            f"float eps, ScalarType? out_dtype=None, {_EPILOGUE}) "
                            "-> (Tensor, Tensor)",
    "qk_rms_norm": "(Tensor x, Tensor weight, float eps, int cast=0) -> Tensor",
    # out may be x; residual_out may be residual (the in-place forms engines use).
    "rms_norm_out": "(Tensor x, Tensor? weight, float eps, Tensor(a!) out, "
                    f"Tensor(b!)? rstd=None, Tensor(c!)? scales=None, {_QUANT}) -> ()",
    "layer_norm_out": "(Tensor x, Tensor? weight, Tensor? bias, float eps, Tensor(a!) out, "
                      "Tensor(b!)? mean=None, Tensor(c!)? rstd=None, Tensor(d!)? scales=None, "
                      f"{_QUANT}) -> ()",
    "fused_add_rms_norm_out": "(Tensor x, Tensor residual, Tensor? weight, float eps, "
                              "Tensor(a!) out, Tensor(b!) residual_out, Tensor(c!)? rstd=None, "
                              f"Tensor(d!)? scales=None, {_QUANT}) -> ()",
    "fused_add_layer_norm_out": "(Tensor x, Tensor residual, Tensor? weight, Tensor? bias, "
                                "float eps, Tensor(a!) out, Tensor(b!) residual_out, "
                                "Tensor(c!)? mean=None, Tensor(d!)? rstd=None, "
                                f"Tensor(e!)? scales=None, {_QUANT}) -> ()",
    "qk_rms_norm_out": "(Tensor x, Tensor weight, float eps, Tensor(a!) out, int cast=0) -> ()",
    # Gradients of the normalized input (plus grad_sum, the gradient reaching the
    # fused ops' sum through residual_out), the weight and the bias; results that
    # output_mask leaves out are empty.
    "norm_backward": "(Tensor? grad_y, Tensor x, Tensor? weight, Tensor? bias, float eps, "
                     "bool layer_norm, bool weight_plus_one, int cast, Tensor? grad_sum, "
                     "bool[3] output_mask) -> (Tensor, Tensor, Tensor)",
}
for _name, _schema in _SCHEMAS.items():
    _lib.define(_name + _schema)

# ---------------------------------------------------------------------------
# Checking tensors and filling normjit_norm_args (the fake implementations and
# the ctypes kernels; csrc/ops.cpp's Call does the same for the native kernels)


def _rows_stride(t, last):
    """Stride between rows when dims [0, last) of t are read as one; 0 for a single
    row (the library's default); None when they cannot be read so."""
    stride, expect = None, 0
    for i in range(last - 1, -1, -1):
        if t.shape[i] == 1:
            continue
        if stride is not None and t.stride(i) != expect:
            return None
        if stride is None:
            stride = t.stride(i)
        expect = t.stride(i) * t.shape[i]
    return 0 if stride is None else stride


class _Call:
    """One normjit_norm call assembled from tensors; every check names the argument
    and runs before anything is launched. Fake implementations stop at the checks
    (and take tensors of any device: CPU tensors get their error from the CPU kernel
    below, and tests trace the ops on the CPU)."""

    def __init__(self, name, op, x):
        self.name, self.op = name, op
        min_dim = 2 if op == B.QK_RMSNORM else 1
        if x.dim() < min_dim:
            raise ValueError(f"{name}: x must have at least {min_dim} dimension(s), "
                             f"got shape {tuple(x.shape)}")
        if x.dtype not in _DTYPES:
            raise TypeError(f"{name}: x has dtype {x.dtype}; normjit takes float32, float16 "
                            "or bfloat16")
        hidden = x.shape[-1]
        if hidden < 1:
            raise ValueError(f"{name}: x's last dimension is empty (shape {tuple(x.shape)})")
        self.a = {"hidden": hidden, "x_dtype": _DTYPES[x.dtype]}  # normjit_norm_args fields
        self.ptrs = {}                                               # pointer field -> tensor
        self.quant_mode, self.quant_dtype, self.quant_name = B.QUANT_NONE, 0, "none"
        if op == B.QK_RMSNORM:
            heads = x.shape[-2]
            self.a["heads"] = heads
            self.a["rows"] = x.numel() // (heads * hidden) if heads else 0
            view = self._tokens_view(x)
            if view is None:
                x = x.contiguous()
                view = self._tokens_view(x)
            self.a["x_row_stride"], self.a["x_head_stride"] = view
        else:
            self.a["rows"] = x.numel() // hidden
            stride = self._row_view(x)
            if stride is None or (stride != 0 and stride < hidden):  # overlapping rows: a copy
                x = x.contiguous()
                stride = self._row_view(x)
            self.a["x_row_stride"] = stride
        self.x = x
        self.ptrs["x"] = x

    def options(self, eps, weight_plus_one, cast):
        self.a["eps"] = eps
        self.a["flags"] = self.a.get("flags", 0) | (B.NORM_WEIGHT_PLUS_ONE if weight_plus_one
                                                    else 0)
        self.a["cast"] = cast

    def weights(self, weight, bias):
        w, b = self._param(weight, "weight"), self._param(bias, "bias")
        if w is not None and b is not None and b.dtype != w.dtype:
            raise TypeError(f"{self.name}: bias has dtype {b.dtype} but weight has {w.dtype}; "
                            "normjit reads both as one dtype: convert one of them")
        if w is not None or b is not None:
            self.a["weight_dtype"] = _DTYPES[(w if w is not None else b).dtype]
        if w is not None:
            self.ptrs["weight"] = w
        if b is not None:
            self.ptrs["bias"] = b

    def residual(self, r):
        self._same_shape(r, "residual")
        if r.dtype not in _DTYPES:
            raise TypeError(f"{self.name}: residual has dtype {r.dtype}; normjit takes "
                            "float32, float16 or bfloat16")
        self.a["residual_dtype"] = _DTYPES[r.dtype]
        stride = self._row_view(r)
        if stride is None:
            r = r.contiguous()
            stride = self._row_view(r)
        self.residual_dtype = r.dtype
        self.ptrs["residual"] = r
        self.a["residual_row_stride"] = stride

    def residual_out(self, r):
        self._same_shape(r, "residual_out")
        if r.dtype != self.residual_dtype:
            raise TypeError(f"{self.name}: residual_out has dtype {r.dtype} but residual has "
                            f"{self.residual_dtype}")
        self.ptrs["residual_out"] = r
        self.a["residual_out_row_stride"] = self._output_rows(r, "residual_out")

    def out(self, y):
        """y, or the quantized codes (call quant() first for those)."""
        self._same_shape(y, "out")
        code = _CODES.get(y.dtype, 0)
        if self.quant_mode == B.QUANT_NONE:
            if y.dtype not in _DTYPES:
                raise TypeError(f"{self.name}: out has dtype {y.dtype}; normjit writes "
                                "float32, float16 or bfloat16")
        elif code != self.quant_dtype:
            raise TypeError(f"{self.name}: out has dtype {y.dtype} but quant "
                            f"'{self.quant_name}' writes {_QUANT_DTYPES[self.quant_dtype]}")
        self.a["y_dtype"] = code
        self.ptrs["y"] = y
        if self.op == B.QK_RMSNORM:
            view = self._tokens_view(y)
            if view is None:
                raise ValueError(f"{self.name}: out needs a unit stride in its last dimension "
                                 "and its leading dimensions at one token stride (strides "
                                 f"{tuple(y.stride())})")
            self.a["y_row_stride"], self.a["y_head_stride"] = view
        else:
            self.a["y_row_stride"] = self._output_rows(y, "out")

    def stats(self, rstd, mean):
        for t, what in ((rstd, "rstd"), (mean, "mean")):
            if t is not None:
                self._per_row(t, what)
                self.ptrs[what] = t

    def quant(self, name, scale, scales, min_scale, column_major, pow2):
        self.quant_name = name
        self.quant_dtype, mode, group = B.quant_from_name(name)
        self.quant_mode = mode
        self.a.update(quant=mode, group_size=group, min_scale=min_scale)
        self.a["flags"] = self.a.get("flags", 0) | (
            (B.NORM_SCALES_COLUMN_MAJOR if column_major else 0) |
            (B.NORM_SCALES_POW2 if pow2 else 0))
        if scale is not None:
            if mode not in (B.QUANT_TENSOR, B.QUANT_TOKEN):
                raise ValueError(f"{self.name}: scale is only for tensor quantization (and as "
                                 "the amax cap of token quantization), not for quant "
                                 f"'{name}'")
            self._same_device(scale, "scale")
            if scale.dtype != torch.float32:
                raise TypeError(f"{self.name}: scale must be float32, not {scale.dtype}")
            if scale.numel() != 1:
                raise ValueError(f"{self.name}: scale must hold one value, not {scale.numel()}")
            self.ptrs["scale"] = scale
        elif mode == B.QUANT_TENSOR:
            raise ValueError(f"{self.name}: quant '{name}' needs scale (the fp32 "
                             "dequantization scale)")
        if mode not in (B.QUANT_TOKEN, B.QUANT_GROUP):
            if scales is not None:
                raise ValueError(f"{self.name}: scales is only written by token and group "
                                 "quantization")
            return
        if scales is None:
            raise ValueError(f"{self.name}: quant '{name}' needs scales")
        self._same_device(scales, "scales")
        if scales.dtype != torch.float32:
            raise TypeError(f"{self.name}: scales must be float32, not {scales.dtype}")
        self.ptrs["scales"] = scales
        rows, hidden = self.a["rows"], self.a["hidden"]
        if mode == B.QUANT_TOKEN:
            if scales.numel() != rows or not scales.is_contiguous():
                raise ValueError(f"{self.name}: scales must be a contiguous tensor of one value "
                                 f"per row ({rows}), got shape {tuple(scales.shape)}")
            return
        if hidden % group:
            raise ValueError(f"{self.name}: hidden ({hidden}) is not a multiple of the group "
                             f"size {group}")
        shape = (*self.x.shape[:-1], hidden // group)
        if tuple(scales.shape) != shape:
            raise ValueError(f"{self.name}: scales must have shape {shape}, got "
                             f"{tuple(scales.shape)}")
        groups, last = shape[-1], scales.dim() - 1
        row_stride = _rows_stride(scales, last)
        if column_major:
            if row_stride is None or row_stride > 1:
                raise ValueError(f"{self.name}: column-major scales need rows at stride 1 "
                                 f"(strides {tuple(scales.stride())})")
            self.a["scales_stride"] = scales.stride(last) if groups > 1 else 0
        else:
            if row_stride is None or (groups > 1 and scales.stride(last) != 1):
                raise ValueError(f"{self.name}: row-major scales need a unit stride in their "
                                 "last dimension and rows at one stride (strides "
                                 f"{tuple(scales.stride())})")
            self.a["scales_stride"] = row_stride

    def run(self):
        """Launch through ctypes on the current stream of x's device."""
        args = B._NormArgs()
        args.struct_size = ctypes.sizeof(B._NormArgs)
        for field, value in self.a.items():
            setattr(args, field, value)
        for field, t in self.ptrs.items():
            setattr(args, field, t.data_ptr())
        device = self.x.device
        ctx = B.device_context(device.index)
        with torch.cuda.device(device):
            stream = torch.cuda.current_stream(device).cuda_stream
            try:
                ctx.norm(self.op, args, stream)
            except B.NormjitError as e:
                if e.status != B.ECONTEXT:
                    raise
                B.make_current(device.index)  # see launch() in csrc/ops.cpp
                ctx.norm(self.op, args, stream)

    # -- helpers

    def _same_device(self, t, what):
        if t.device != self.x.device:
            raise ValueError(f"{self.name}: {what} is on {t.device} but x is on {self.x.device}")

    def _same_shape(self, t, what):
        self._same_device(t, what)
        if t.shape != self.x.shape:
            raise ValueError(f"{self.name}: {what} has shape {tuple(t.shape)} but x has "
                             f"{tuple(self.x.shape)}")

    def _param(self, t, what):
        if t is None:
            return None
        self._same_device(t, what)
        hidden = self.a["hidden"]
        if t.dim() != 1 or t.shape[0] != hidden:
            raise ValueError(f"{self.name}: {what} must have shape [{hidden}], got "
                             f"{list(t.shape)}")
        if t.dtype not in _DTYPES:
            raise TypeError(f"{self.name}: {what} has dtype {t.dtype}; normjit takes float32, "
                            "float16 or bfloat16")
        if t.stride(0) != 1 and hidden != 1:
            raise ValueError(f"{self.name}: {what} must be contiguous")
        return t

    def _per_row(self, t, what):
        self._same_device(t, what)
        if t.dtype != torch.float32:
            raise TypeError(f"{self.name}: {what} must be float32, not {t.dtype}")
        rows = self.a["rows"]
        if t.numel() != rows or not t.is_contiguous():
            raise ValueError(f"{self.name}: {what} must be a contiguous tensor of one value per "
                             f"row ({rows}), got shape {tuple(t.shape)}")

    def _row_view(self, t):
        if self.a["hidden"] > 1 and t.stride(-1) != 1:
            return None
        return _rows_stride(t, t.dim() - 1)

    def _output_rows(self, t, what):
        stride = self._row_view(t)
        if stride is None:
            raise ValueError(f"{self.name}: {what} needs a unit stride in its last dimension and "
                             "its leading dimensions at one row stride (strides "
                             f"{tuple(t.stride())})")
        return stride

    def _tokens_view(self, t):
        """(token stride, head stride) of a [tokens..., heads, head_dim] tensor, or None."""
        if self.a["hidden"] > 1 and t.stride(-1) != 1:
            return None
        tokens = _rows_stride(t, t.dim() - 2)
        if tokens is None:
            return None
        return tokens, (t.stride(-2) if t.shape[-2] > 1 else 0)


def _result_dtype(x, out_dtype, name):
    if out_dtype is None:
        return x.dtype
    if out_dtype not in _DTYPES:
        raise TypeError(f"{name}: out_dtype {out_dtype} is not float32, float16 or bfloat16 "
                        "(quantized outputs take quant=)")
    return out_dtype


# ---------------------------------------------------------------------------
# One body per op: checks, allocation and, with run=True, the ctypes launch.
# The fake implementations call them with run=False.

def _plain(name, op, x, weight, bias, eps, out_dtype, weight_plus_one, cast, run):
    c = _Call(name, op, x)
    c.options(eps, weight_plus_one, cast)
    c.weights(weight, bias)
    y = x.new_empty(x.shape, dtype=_result_dtype(x, out_dtype, name))
    c.out(y)
    if run:
        c.run()
    return y


def _rms_norm(x, weight, eps, out_dtype=None, weight_plus_one=False, cast=0, *, run):
    return _plain("rms_norm", B.RMSNORM, x, weight, None, eps, out_dtype, weight_plus_one, cast,
                  run)


def _layer_norm(x, weight, bias, eps, out_dtype=None, weight_plus_one=False, cast=0, *, run):
    return _plain("layer_norm", B.LAYERNORM, x, weight, bias, eps, out_dtype, weight_plus_one,
                  cast, run)


def _fused_add(name, op, x, residual, weight, bias, eps, out_dtype, weight_plus_one, cast, run):
    c = _Call(name, op, x)
    c.options(eps, weight_plus_one, cast)
    c.weights(weight, bias)
    c.residual(residual)
    y = x.new_empty(x.shape, dtype=_result_dtype(x, out_dtype, name))
    s = residual.new_empty(x.shape)
    c.out(y)
    c.residual_out(s)
    if run:
        c.run()
    return y, s


def _fused_add_rms_norm(x, residual, weight, eps, out_dtype=None, weight_plus_one=False, cast=0,
                        *, run):
    return _fused_add("fused_add_rms_norm", B.ADD_RMSNORM, x, residual, weight, None, eps,
                      out_dtype, weight_plus_one, cast, run)


def _fused_add_layer_norm(x, residual, weight, bias, eps, out_dtype=None, weight_plus_one=False,
                          cast=0, *, run):
    return _fused_add("fused_add_layer_norm", B.ADD_LAYERNORM, x, residual, weight, bias, eps,
                      out_dtype, weight_plus_one, cast, run)


def _qk_rms_norm(x, weight, eps, cast=0, *, run):
    c = _Call("qk_rms_norm", B.QK_RMSNORM, x)
    c.options(eps, False, cast)
    c.weights(weight, None)
    y = x.new_empty(x.shape)
    c.out(y)
    if run:
        c.run()
    return y


def _out_call(c, out, rstd, mean, scales, scale, quant, min_scale, column_major_scales,
              pow2_scales, run):
    c.quant(quant, scale, scales, min_scale, column_major_scales, pow2_scales)
    c.out(out)
    c.stats(rstd, mean)
    if run:
        c.run()


def _rms_norm_out(x, weight, eps, out, rstd=None, scales=None, scale=None, quant="none",
                  min_scale=0.0, column_major_scales=False, pow2_scales=False,
                  weight_plus_one=False, cast=0, *, run):
    c = _Call("rms_norm", B.RMSNORM, x)
    c.options(eps, weight_plus_one, cast)
    c.weights(weight, None)
    _out_call(c, out, rstd, None, scales, scale, quant, min_scale, column_major_scales,
              pow2_scales, run)


def _layer_norm_out(x, weight, bias, eps, out, mean=None, rstd=None, scales=None, scale=None,
                    quant="none", min_scale=0.0, column_major_scales=False, pow2_scales=False,
                    weight_plus_one=False, cast=0, *, run):
    c = _Call("layer_norm", B.LAYERNORM, x)
    c.options(eps, weight_plus_one, cast)
    c.weights(weight, bias)
    _out_call(c, out, rstd, mean, scales, scale, quant, min_scale, column_major_scales,
              pow2_scales, run)


def _fused_add_rms_norm_out(x, residual, weight, eps, out, residual_out, rstd=None, scales=None,
                            scale=None, quant="none", min_scale=0.0, column_major_scales=False,
                            pow2_scales=False, weight_plus_one=False, cast=0, *, run):
    c = _Call("fused_add_rms_norm", B.ADD_RMSNORM, x)
    c.options(eps, weight_plus_one, cast)
    c.weights(weight, None)
    c.residual(residual)
    c.residual_out(residual_out)
    _out_call(c, out, rstd, None, scales, scale, quant, min_scale, column_major_scales,
              pow2_scales, run)


def _fused_add_layer_norm_out(x, residual, weight, bias, eps, out, residual_out, mean=None,
                              rstd=None, scales=None, scale=None, quant="none", min_scale=0.0,
                              column_major_scales=False, pow2_scales=False,
                              weight_plus_one=False, cast=0, *, run):
    c = _Call("fused_add_layer_norm", B.ADD_LAYERNORM, x)
    c.options(eps, weight_plus_one, cast)
    c.weights(weight, bias)
    c.residual(residual)
    c.residual_out(residual_out)
    _out_call(c, out, rstd, mean, scales, scale, quant, min_scale, column_major_scales,
              pow2_scales, run)


def _qk_rms_norm_out(x, weight, eps, out, cast=0, *, run):
    c = _Call("qk_rms_norm", B.QK_RMSNORM, x)
    c.options(eps, False, cast)
    c.weights(weight, None)
    c.out(out)
    if run:
        c.run()


_BODIES = {
    "rms_norm": _rms_norm, "layer_norm": _layer_norm,
    "fused_add_rms_norm": _fused_add_rms_norm, "fused_add_layer_norm": _fused_add_layer_norm,
    "qk_rms_norm": _qk_rms_norm,
    "rms_norm_out": _rms_norm_out, "layer_norm_out": _layer_norm_out,
    "fused_add_rms_norm_out": _fused_add_rms_norm_out,
    "fused_add_layer_norm_out": _fused_add_layer_norm_out,
    "qk_rms_norm_out": _qk_rms_norm_out,
}


def _fake(body):
    def fake(*args, **kwargs):
        return body(*args, **kwargs, run=False)
    return fake


def _kernel(body):
    def kernel(*args, **kwargs):
        return body(*args, **kwargs, run=True)
    return kernel


def _register_fakes():
    """torch.library.register_fake for each op, less its look-up of the caller:
    register_fake asks inspect for the calling line and module (for its messages),
    which walks sys.modules and reads this file, 5-10 ms of this import for ten ops
    (2-core machine, torch 2.11). Where torch's fake-impl registry takes what
    Library._register_fake passes it (as torch 2.11's does), this registers there
    directly as that method does, naming the op's body as the source; else the
    public call. (Library._register_fake also wraps the function in a check that a
    C++ op names its Python module; the check passes ops defined in Python through.)"""
    holder_register = getattr(getattr(getattr(torch._library, "fake_impl", None),
                                      "FakeImplHolder", None), "register", None)
    code = getattr(holder_register, "__code__", None)
    direct = (code is not None and code.co_varnames[:4] == ("self", "func", "source", "lib")
              and hasattr(_lib, "_registration_handles"))
    for name, body in _BODIES.items():
        if direct:
            entry = torch._library.simple_registry.singleton.find("normjit::" + name)
            source = f"{__file__}:{body.__code__.co_firstlineno}"
            _lib._registration_handles.append(entry.fake_impl.register(_fake(body), source,
                                                                       lib=_lib))
        else:
            torch.library.register_fake("normjit::" + name, _fake(body), lib=_lib)


_register_fakes()


# ---------------------------------------------------------------------------
# Gradients, in PyTorch operations (the backward of the functional ops, both paths)

def _norm_backward(grad_y, x, weight, bias, eps, layer_norm, weight_plus_one, cast, grad_sum,
                   output_mask):
    hidden = x.shape[-1]
    acc = torch.promote_types(x.dtype, torch.float32)  # fp32, or fp64 for fp64 (gradcheck)
    xf = x.to(acc)
    xc = xf - xf.mean(-1, keepdim=True) if layer_norm else xf
    rstd = torch.rsqrt((xc * xc).mean(-1, keepdim=True) + eps)
    xhat = xc * rstd
    d_input = d_weight = d_bias = None
    if grad_y is not None:
        g = grad_y.to(acc)
        gw = g
        if weight is not None:
            # The cast modes round at different points; the gradient is that of the
            # unrounded formula. Gemma's cast scales by 1 + w, as weight_plus_one does.
            w = weight.to(acc)
            gw = g * (w + 1 if weight_plus_one or cast == B.CAST_GEMMA else w)
        if output_mask[0]:
            d = gw - xhat * (gw * xhat).mean(-1, keepdim=True)
            if layer_norm:
                d = d - gw.mean(-1, keepdim=True)
            d_input = d * rstd
        if output_mask[1] and weight is not None:
            d_weight = (g * xhat).reshape(-1, hidden).sum(0).to(weight.dtype)
        if output_mask[2] and bias is not None:
            d_bias = g.reshape(-1, hidden).sum(0).to(bias.dtype)
    if output_mask[0] and grad_sum is not None:
        d_input = grad_sum.to(acc) if d_input is None else d_input + grad_sum.to(acc)
    if output_mask[0] and d_input is None:
        d_input = torch.zeros_like(xf)
    empty = x.new_empty(0)
    return (d_input.to(x.dtype) if d_input is not None else empty,
            d_weight if d_weight is not None else empty,
            d_bias if d_bias is not None else empty)


_lib.impl("norm_backward", _norm_backward, "CompositeImplicitAutograd")

# CPU tensors get a clear error rather than the dispatcher's "could not run".
_cpu_lib = torch.library.Library("normjit", "FRAGMENT")


def _on_cpu(name):
    def kernel(*args, **kwargs):
        raise ValueError(f"{name}: x is on cpu; normjit runs on CUDA tensors")
    return kernel


for _name in _BODIES:
    _cpu_lib.impl(_name, _on_cpu(_name.removesuffix("_out")), "CPU")


# ---------------------------------------------------------------------------
# The ctypes kernels (used where the native extension cannot be built)

_KINDS = {  # functional op -> (fused, layer norm, its tensor inputs in schema order)
    "rms_norm": (False, False, ("x", "weight")),
    "layer_norm": (False, True, ("x", "weight", "bias")),
    "fused_add_rms_norm": (True, False, ("x", "residual", "weight")),
    "fused_add_layer_norm": (True, True, ("x", "residual", "weight", "bias")),
    "qk_rms_norm": (False, False, ("x", "weight")),
}

_NOT_DIFFERENTIABLE = ("results written into given tensors (out=, return_rstd/return_stats, an "
                       "in-place residual or QK-norm) are not differentiable, and an input "
                       "requires grad; call it without them, or under torch.no_grad()")


def _register_autograd(name):
    fused, layer, _ = _KINDS[name]
    names = [a.name for a in getattr(torch.ops.normjit, name).default._schema.arguments]

    def setup_context(ctx, inputs, output):
        values = dict(zip(names, inputs))
        saved = output[1] if fused else values["x"]
        ctx.save_for_backward(saved, values.get("weight"), values.get("bias"))
        ctx.eps = values["eps"]
        ctx.weight_plus_one = values.get("weight_plus_one", False)
        ctx.cast = values.get("cast", 0)
        ctx.x_dtype = values["x"].dtype

    def backward(ctx, *grads):
        saved, weight, bias = ctx.saved_tensors
        needs = dict(zip(names, ctx.needs_input_grad))
        mask = [needs["x"] or needs.get("residual", False),
                weight is not None and needs.get("weight", False),
                bias is not None and needs.get("bias", False)]
        grad_sum = grads[1] if fused else None
        d_input, d_weight, d_bias = torch.ops.normjit.norm_backward(
            grads[0], saved, weight, bias, ctx.eps, layer, ctx.weight_plus_one, ctx.cast,
            grad_sum, mask)
        result = dict.fromkeys(names)
        if mask[0]:
            result["x"] = d_input.to(ctx.x_dtype) if fused else d_input
            if fused:
                result["residual"] = d_input
        if mask[1]:
            result["weight"] = d_weight
        if mask[2]:
            result["bias"] = d_bias
        return tuple(result[n] for n in names)

    torch.library.register_autograd("normjit::" + name, backward, setup_context=setup_context,
                                    lib=_lib)


def _register_out_autograd(name):
    """Refuse to record an out op (unless it quantizes) and bump the versions of what it
    writes, as csrc/ops.cpp's autograd kernels of the out ops do."""
    op = getattr(torch.ops.normjit, name).default
    args = op._schema.arguments
    names = [a.name for a in args]
    written = [a.name for a in args if a.alias_info is not None and a.alias_info.is_write]
    inputs = _KINDS[name.removesuffix("_out")][2]
    public = name.removesuffix("_out")

    def kernel(keyset, *args_, **kwargs):
        values = dict(zip(names, args_), **kwargs)
        if torch.is_grad_enabled():
            if (values.get("quant", "none") == "none" and
                    any(values.get(n) is not None and values[n].requires_grad for n in inputs)):
                raise RuntimeError(f"{public}: {_NOT_DIFFERENTIABLE}")
            if any(values.get(n) is not None and values[n].requires_grad for n in written):
                raise RuntimeError(f"{public}: an output tensor requires grad and cannot be "
                                   "written in place")
        with torch._C._AutoDispatchBelowADInplaceOrView():
            op.redispatch(keyset & torch._C._after_ADInplaceOrView_keyset, *args_, **kwargs)
        for n in written:
            if values.get(n) is not None:
                torch.autograd.graph.increment_version(values[n])

    _lib.impl(name, kernel, "Autograd", with_keyset=True)


def _register_ctypes_kernels():
    for name, body in _BODIES.items():
        _lib.impl(name, _kernel(body), "CUDA")
    for name in _KINDS:
        _register_autograd(name)
        _register_out_autograd(name + "_out")


def _load_kernels():
    """Register the CUDA and autograd kernels: native where it builds, else ctypes.
    Returns which ("native" or "ctypes")."""
    choice = os.environ.get("NORMJIT_TORCH_NATIVE", "")
    if choice != "0" and (choice == "1" or torch.cuda.is_available()):
        try:
            from . import _native
            _native.load()
            return "native"
        except Exception as e:  # no compiler, no headers, a torch it cannot build against
            lines = str(e).splitlines() or [type(e).__name__]
            reason = "; ".join([ln for ln in lines if "error" in ln.lower()][:3] or lines[:1])
            warnings.warn(f"normjit: the native torch ops could not be built ({reason}); using "
                          "the ctypes kernels instead, which cost more host time per call",
                          RuntimeWarning, stacklevel=2)
    _register_ctypes_kernels()
    return "ctypes"


#: "native" (csrc/ops.cpp) or "ctypes": which kernels this process runs.
kernels = _load_kernels()

_RMS_NORM = torch.ops.normjit.rms_norm.default
_LAYER_NORM = torch.ops.normjit.layer_norm.default
_FUSED_ADD_RMS_NORM = torch.ops.normjit.fused_add_rms_norm.default
_FUSED_ADD_LAYER_NORM = torch.ops.normjit.fused_add_layer_norm.default
_QK_RMS_NORM = torch.ops.normjit.qk_rms_norm.default
_OUT_OPS = {B.RMSNORM: torch.ops.normjit.rms_norm_out.default,
            B.LAYERNORM: torch.ops.normjit.layer_norm_out.default,
            B.ADD_RMSNORM: torch.ops.normjit.fused_add_rms_norm_out.default,
            B.ADD_LAYERNORM: torch.ops.normjit.fused_add_layer_norm_out.default}
_QK_RMS_NORM_OUT = torch.ops.normjit.qk_rms_norm_out.default

# ---------------------------------------------------------------------------
# The Python API


def cast_code(cast):
    """The normjit_cast of a cast name: "none", "llama" or "gemma"."""
    code = B.CASTS.get(cast)
    if code is None:
        raise ValueError(f"cast must be one of {', '.join(map(repr, B.CASTS))}, not {cast!r}")
    return code


def _quant_spec(name):
    """normjit_quant_from_name, which torch.compile calls while tracing (a ctypes call
    it cannot trace) and keeps as a constant."""
    return B.quant_from_name(name)


# torch.compiler.assume_constant_result imports torch._dynamo: over a second at the
# first call of every process, also of those that never compile.
# Without dynamo loaded, set the mark that decorator sets; test_torch_cpu.py compiles
# quantized calls with fullgraph=True, so a torch that reads another mark fails there.
if "torch._dynamo" in sys.modules:
    _quant_spec = torch.compiler.assume_constant_result(_quant_spec)
else:
    _quant_spec._dynamo_marked_constant = True


def _records_grad(*tensors):
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _column_major_scales(x, groups):
    """A [..., groups] view of a column-major buffer whose token count is padded to a
    multiple of 4 (the layout DeepGEMM-style block-scaled GEMMs read)."""
    rows = x.numel() // x.shape[-1]
    padded = (rows + 3) // 4 * 4
    buf = x.new_empty((groups, padded), dtype=torch.float32)
    return buf[:, :rows].t().view(*x.shape[:-1], groups)


def _norm_out(name, op, x, residual, weight, bias, eps, out, residual_out, out_dtype, stats,
              weight_plus_one, cast, quant, scale, scale_ub, min_scale, column_major_scales,
              pow2_scales):
    """Allocate what an out op writes, call it, and return the results in the order the
    functions document: y or (q, scales), then residual_out, then mean and/or rstd."""
    layer = op in (B.LAYERNORM, B.ADD_LAYERNORM)
    fused = op in (B.ADD_RMSNORM, B.ADD_LAYERNORM)
    qname = "none" if quant is None else quant
    qdtype, mode, group = _quant_spec(qname) if quant is not None else (0, 0, 0)
    if mode != B.QUANT_NONE:
        ydtype = _QUANT_DTYPES[qdtype]
        if out_dtype is not None and out_dtype != ydtype:
            raise ValueError(f"{name}: out_dtype {out_dtype} but quant {quant!r} writes {ydtype}")
    else:
        ydtype = x.dtype if out_dtype is None else out_dtype
    if scale is not None and mode != B.QUANT_TENSOR:
        raise ValueError(f"{name}: scale is the static scale of tensor quantization (token "
                         "quantization takes scale_ub)")
    if scale_ub is not None and mode != B.QUANT_TOKEN:
        raise ValueError(f"{name}: scale_ub caps token quantization only")
    if out is None:
        out = x.new_empty(x.shape, dtype=ydtype)
    scales = None
    if mode == B.QUANT_TOKEN:
        scales = x.new_empty((*x.shape[:-1], 1), dtype=torch.float32)
    elif mode == B.QUANT_GROUP:
        groups = max(x.shape[-1] // group, 1)
        scales = (_column_major_scales(x, groups) if column_major_scales else
                  x.new_empty((*x.shape[:-1], groups), dtype=torch.float32))
    mean = rstd = None
    if stats:
        rstd = x.new_empty(x.shape[:-1], dtype=torch.float32)
        if layer:
            mean = x.new_empty(x.shape[:-1], dtype=torch.float32)
    # Positional, in schema order (keywords cost more to parse).
    args = [x] + ([residual] if fused else []) + [weight] + ([bias] if layer else []) + [eps, out]
    args += ([residual_out] if fused else []) + ([mean] if layer else [])
    args += [rstd, scales, scale if mode == B.QUANT_TENSOR else scale_ub, qname, min_scale,
             column_major_scales, pow2_scales, weight_plus_one, cast_code(cast)]
    _OUT_OPS[op](*args)
    result = (out,) if mode == B.QUANT_NONE else (out, scale if mode == B.QUANT_TENSOR else scales)
    if fused:
        result += (residual_out,)
    if stats:
        result += (mean, rstd) if layer else (rstd,)
    return result[0] if len(result) == 1 else result


def rms_norm(x, weight=None, eps=1e-6, *, out=None, out_dtype=None, return_rstd=False,
             weight_plus_one=False, cast="none", quant=None, scale=None, scale_ub=None,
             min_scale=0.0, column_major_scales=False, pow2_scales=False):
    """RMSNorm over the last dimension of a CUDA tensor, on the current stream:
    y = x * rsqrt(mean(x^2) + eps) * weight.

    out: write y there (may be x itself). out_dtype: y's dtype (default x's).
    return_rstd: also return the fp32 per-row rsqrt(mean(x^2) + eps).
    weight_plus_one: scale by 1 + weight. cast: where the result is rounded, to
    match a model's code: "none" (fp32 throughout, rounded once), "llama"
    (normalize, round to x's dtype, multiply by the weight), "gemma" (fp32
    throughout with 1 + weight).
    quant: a quantized output, "fp8-tensor", "fp8-token", "int8-token",
    "fp8-group128", "fp8e5m2-token", ... (as `normjit warm --quant`): returns
    (q, scales) in place of y, q in float8_e4m3fn / float8_e5m2 / int8 and
    scales fp32: for "-tensor" the given `scale` (a one-element fp32 tensor),
    for "-token" one per row ([..., 1], capped by scale_ub's amax if given),
    for "-group64/128" [..., hidden // group] (row-major, or with
    column_major_scales=True a view of a column-major buffer whose token count
    is padded to a multiple of 4), rounded up to powers of two with
    pow2_scales. min_scale: the smallest scale (0: the library's default).

    Returns y, or a tuple: (y or q, scales) then rstd where asked. The plain
    form is differentiable; out=, return_rstd and quant results are not.
    """
    if out is None and quant is None and not return_rstd:
        if out_dtype is None and not weight_plus_one and cast == "none":
            return _RMS_NORM(x, weight, eps)  # the schema's defaults parse fastest
        return _RMS_NORM(x, weight, eps, out_dtype, weight_plus_one, cast_code(cast))
    return _norm_out("rms_norm", B.RMSNORM, x, None, weight, None, eps, out, None, out_dtype,
                     return_rstd, weight_plus_one, cast, quant, scale, scale_ub, min_scale,
                     column_major_scales, pow2_scales)


def layer_norm(x, weight=None, bias=None, eps=1e-5, *, out=None, out_dtype=None,
               return_stats=False, weight_plus_one=False, cast="none", quant=None, scale=None,
               scale_ub=None, min_scale=0.0, column_major_scales=False, pow2_scales=False):
    """LayerNorm over the last dimension: y = (x - mean) * rsqrt(var + eps) * weight + bias
    (biased variance). bias must have weight's dtype. return_stats adds the fp32 per-row
    mean and rstd. Every other keyword as rms_norm's."""
    if out is None and quant is None and not return_stats:
        if out_dtype is None and not weight_plus_one and cast == "none":
            return _LAYER_NORM(x, weight, bias, eps)
        return _LAYER_NORM(x, weight, bias, eps, out_dtype, weight_plus_one, cast_code(cast))
    return _norm_out("layer_norm", B.LAYERNORM, x, None, weight, bias, eps, out, None, out_dtype,
                     return_stats, weight_plus_one, cast, quant, scale, scale_ub, min_scale,
                     column_major_scales, pow2_scales)


def fused_add_rms_norm(x, residual, weight=None, eps=1e-6, *, residual_out=None, out=None,
                       out_dtype=None, return_rstd=False, weight_plus_one=False, cast="none",
                       quant=None, scale=None, scale_ub=None, min_scale=0.0,
                       column_major_scales=False, pow2_scales=False):
    """s = x + residual, rounded once to residual's dtype, written to residual_out (None:
    into residual, in place), then y = rms_norm(s): bit for bit what adding in that dtype
    and calling rms_norm gives. out may be x itself.

    Returns (y, residual_out); under quant (q, scales, residual_out); rstd is
    appended with return_rstd. When autograd records the call (an input requires grad
    and no out=, residual_out=, quant or return_rstd is given) the sum is returned as a
    new tensor rather than written into residual, and the call is differentiable."""
    if (out is None and residual_out is None and quant is None and not return_rstd and
            _records_grad(x, residual, weight)):
        return _FUSED_ADD_RMS_NORM(x, residual, weight, eps, out_dtype, weight_plus_one,
                                   cast_code(cast))
    return _norm_out("fused_add_rms_norm", B.ADD_RMSNORM, x, residual, weight, None, eps, out,
                     residual if residual_out is None else residual_out, out_dtype,
                     return_rstd, weight_plus_one, cast, quant, scale, scale_ub, min_scale,
                     column_major_scales, pow2_scales)


def fused_add_layer_norm(x, residual, weight=None, bias=None, eps=1e-5, *, residual_out=None,
                         out=None, out_dtype=None, return_stats=False, weight_plus_one=False,
                         cast="none", quant=None, scale=None, scale_ub=None, min_scale=0.0,
                         column_major_scales=False, pow2_scales=False):
    """fused_add_rms_norm with LayerNorm; return_stats appends mean and rstd."""
    if (out is None and residual_out is None and quant is None and not return_stats and
            _records_grad(x, residual, weight, bias)):
        return _FUSED_ADD_LAYER_NORM(x, residual, weight, bias, eps, out_dtype,
                                     weight_plus_one, cast_code(cast))
    return _norm_out("fused_add_layer_norm", B.ADD_LAYERNORM, x, residual, weight, bias, eps,
                     out, residual if residual_out is None else residual_out, out_dtype,
                     return_stats, weight_plus_one, cast, quant, scale, scale_ub, min_scale,
                     column_major_scales, pow2_scales)


def qk_rms_norm(x, weight, eps=1e-6, *, out=None, cast="none"):
    """Per-head RMSNorm over head_dim of x, a [tokens, heads, head_dim] view (any token and
    head strides, unit stride in head_dim; more leading dims are tokens too), for example
    the q or k slice of a fused qkv projection, without copying it. out=None normalizes x
    in place, except when autograd records the call: then the result is a new tensor.
    Returns the result (x itself in place)."""
    if out is None:
        if _records_grad(x, weight):
            return _QK_RMS_NORM(x, weight, eps, cast_code(cast))
        out = x
    _QK_RMS_NORM_OUT(x, weight, eps, out, cast_code(cast))
    return out


# ---------------------------------------------------------------------------
# prepare

_OP_FUNCTIONS = {rms_norm: B.RMSNORM, layer_norm: B.LAYERNORM,
                 fused_add_rms_norm: B.ADD_RMSNORM, fused_add_layer_norm: B.ADD_LAYERNORM,
                 qk_rms_norm: B.QK_RMSNORM}


def _op_code(op):
    if isinstance(op, int) and B.op_name(op):
        return op
    if callable(op) and op in _OP_FUNCTIONS:
        return _OP_FUNCTIONS[op]
    if isinstance(op, str):
        code = B.op_from_name(op) or {f.__name__: c for f, c in _OP_FUNCTIONS.items()}.get(op)
        if code:
            return code
    raise ValueError(f"op {op!r}: give a normjit function (normjit.rms_norm, ...), a name "
                     "(\"rmsnorm\", \"add_rmsnorm\", ... or \"rms_norm\", ...) or a normjit_op")


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _device_index(device):
    if device is None:
        return torch.cuda.current_device()
    device = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"device {device} is not a CUDA device")
    return device.index if device.index is not None else torch.cuda.current_device()


def prepare(op, hidden_sizes, dtype, *, weight_dtype=None, out_dtype=None, residual_dtype=None,
            quant=None, cast="none", weight_plus_one=False, column_major_scales=False,
            pow2_scales=False, all_alignments=False, device=None):
    """Compile and load now the kernels that calls of `op` with these hidden sizes (head_dim
    for qk_rms_norm) and dtypes will launch, so that later calls, for example while a CUDA
    graph is captured, only launch.

    dtype, weight_dtype (default: dtype), out_dtype (default: dtype, or the quantized
    dtype), residual_dtype (fused ops; default: dtype), quant and cast may each be a list:
    every combination is prepared, e.g. weight_dtype=[torch.bfloat16, torch.float32].
    all_alignments also prepares the narrower kernels used for unaligned tensors.
    Returns the summed counts of normjit_prepare (compiled, from_disk, in_memory,
    not_cached)."""
    code = _op_code(op)
    hidden_sizes = [int(h) for h in _as_list(hidden_sizes)]
    flags = ((B.NORM_WEIGHT_PLUS_ONE if weight_plus_one else 0) |
             (B.NORM_SCALES_COLUMN_MAJOR if column_major_scales else 0) |
             (B.NORM_SCALES_POW2 if pow2_scales else 0))

    def codes(dtypes, what):
        if dtypes is None:
            return [0]
        result = []
        for d in _as_list(dtypes):
            if d not in _DTYPES:
                raise TypeError(f"prepare: {what} {d} is not float32, float16 or bfloat16")
            result.append(_DTYPES[d])
        return result

    # Every argument is checked before the device is touched.
    calls = []
    for x, w, y, r, q, c in itertools.product(
            codes(dtype, "dtype"), codes(weight_dtype, "weight_dtype"),
            codes(out_dtype, "out_dtype"), codes(residual_dtype, "residual_dtype"),
            _as_list(quant), _as_list(cast)):
        qdtype, mode, group = B.quant_from_name(q) if q is not None else (0, 0, 0)
        calls.append(dict(x_dtype=x, y_dtype=qdtype or y or x, weight_dtype=w or x,
                          residual_dtype=r, quant=mode, group_size=group, cast=cast_code(c),
                          norm_flags=flags,
                          flags=B.PREPARE_ALL_ALIGNMENTS if all_alignments else 0))
    index = _device_index(device)
    totals = {"compiled": 0, "from_disk": 0, "in_memory": 0, "not_cached": 0}
    with B.bound_to_device(index):
        ctx = B.device_context(index)
        for kw in calls:
            stats = ctx.prepare(code, hidden_sizes, kw.pop("x_dtype"), **kw)
            for k in totals:
                totals[k] += stats[k]
    return totals
