"""Float64 references of normjit's operations (include/normjit.h), shared by the
CPU and GPU tests, and test-only CPU kernels built on them (so that torch.compile,
autograd and the modules can be exercised on a machine without a GPU)."""
import torch

QMAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0, torch.int8: 127.0}


def fused_sum(x, residual):
    """x + residual in fp32, rounded once to residual's dtype (as torch adds them);
    float64 tensors (gradcheck on the CPU) add in float64."""
    acc = torch.promote_types(torch.promote_types(x.dtype, residual.dtype), torch.float32)
    return (x.to(acc) + residual.to(acc)).to(residual.dtype)


def norm(x, weight=None, bias=None, eps=1e-6, *, layer=False, weight_plus_one=False,
         cast="none", out_dtype=None):
    """(y, v, mean, rstd): y rounded where the cast mode rounds, v the float64 value a
    quantized output reads, mean and rstd per row (float64)."""
    xd = x.double()
    mean = xd.mean(-1, keepdim=True) if layer else None
    xc = xd - mean if layer else xd
    rstd = torch.rsqrt((xc * xc).mean(-1, keepdim=True) + eps)
    xhat = xc * rstd
    y_dtype = out_dtype or x.dtype
    w = None if weight is None else weight.double()
    if w is not None and (weight_plus_one or cast == "gemma"):
        w = w + 1
    b = None if bias is None else bias.double()
    if cast == "llama":
        v = xhat.to(x.dtype).double()
        if w is not None:
            v = w * v
        y = v.to(y_dtype)
        if b is not None:
            v = y.double() + b
            y = v.to(y_dtype)
    else:
        v = xhat if w is None else xhat * w
        if b is not None:
            v = v + b
        y = v.to(y_dtype)
    return y, v, mean, rstd


def quantize(v, dtype, mode, group=0, scale=None, scale_ub=None, min_scale=0.0, pow2=False):
    """(q, scales) of float64 values v as the header defines them; mode is "tensor",
    "token" or "group"."""
    qmax = QMAX[dtype]
    hidden = v.shape[-1]
    if mode == "tensor":
        s = scale.double().reshape(())
        scales = None
        vs = v * (1.0 / scale.float()).double()
    else:
        if mode == "token":
            blocks = v.unsqueeze(-2)
        else:
            blocks = v.reshape(*v.shape[:-1], hidden // group, group)
        amax = blocks.abs().nan_to_num(0.0).amax(-1, keepdim=True)
        if scale_ub is not None:
            amax = amax.clamp(max=scale_ub.double().reshape(()))
        floor = min_scale or (1.0 / (qmax * 512) if mode == "token" else 1e-10 / qmax)
        s = torch.maximum(amax / qmax, torch.full_like(amax, floor))
        if pow2:
            s = torch.exp2(torch.ceil(torch.log2(s)))
        s = s.float().double()
        vs = (blocks / s).reshape(v.shape)
        scales = s.squeeze(-1).float()  # token: [..., 1]; group: [..., groups]
    vs = vs.clamp(-qmax, qmax)
    if dtype == torch.int8:
        q = torch.round(vs).nan_to_num(0.0).to(torch.int8)
    else:
        q = vs.float().to(dtype)
    return q, scales


# ---------------------------------------------------------------------------
# Test-only CPU kernels for the normjit ops (the real ones are CUDA only)

_CASTS = {0: "none", 1: "llama", 2: "gemma"}


def _quant_parts(quant):
    from normjit import _binding as B
    qdtype, mode, group = B.quant_from_name(quant)
    dtypes = {B.FP8_E4M3: torch.float8_e4m3fn, B.FP8_E5M2: torch.float8_e5m2,
              B.INT8: torch.int8}
    modes = {B.QUANT_TENSOR: "tensor", B.QUANT_TOKEN: "token", B.QUANT_GROUP: "group"}
    return (dtypes.get(qdtype), modes.get(mode), group)


def _write(out, rstd, mean, scales, scale, quant, min_scale, pow2, r):
    y, v, m, s = r
    if quant == "none":
        out.copy_(y.to(out.dtype))
    else:
        qdtype, mode, group = _quant_parts(quant)
        q, sc = quantize(v, qdtype, mode, group, scale=scale if mode == "tensor" else None,
                         scale_ub=scale if mode == "token" else None, min_scale=min_scale,
                         pow2=pow2)
        out.copy_(q)
        if scales is not None:
            scales.copy_(sc.reshape(scales.shape))
    if rstd is not None:
        rstd.copy_(s.reshape(rstd.shape))
    if mean is not None:
        mean.copy_(m.reshape(mean.shape))


def register_cpu_kernels(lib):
    """Register reference CPU kernels for every normjit op in `lib` (a FRAGMENT)."""
    def rms_norm(x, weight, eps, out_dtype=None, weight_plus_one=False, cast=0):
        return norm(x, weight, None, eps, weight_plus_one=weight_plus_one, cast=_CASTS[cast],
                    out_dtype=out_dtype)[0]

    def layer_norm(x, weight, bias, eps, out_dtype=None, weight_plus_one=False, cast=0):
        return norm(x, weight, bias, eps, layer=True, weight_plus_one=weight_plus_one,
                    cast=_CASTS[cast], out_dtype=out_dtype)[0]

    def fused_add_rms_norm(x, residual, weight, eps, out_dtype=None, weight_plus_one=False,
                           cast=0):
        s = fused_sum(x, residual)
        return rms_norm(s, weight, eps, out_dtype or x.dtype, weight_plus_one, cast), s

    def fused_add_layer_norm(x, residual, weight, bias, eps, out_dtype=None,
                             weight_plus_one=False, cast=0):
        s = fused_sum(x, residual)
        return layer_norm(s, weight, bias, eps, out_dtype or x.dtype, weight_plus_one, cast), s

    def qk_rms_norm(x, weight, eps, cast=0):
        return rms_norm(x, weight, eps, None, False, cast).contiguous()

    def rms_norm_out(x, weight, eps, out, rstd=None, scales=None, scale=None, quant="none",
                     min_scale=0.0, column_major_scales=False, pow2_scales=False,
                     weight_plus_one=False, cast=0):
        r = norm(x, weight, None, eps, weight_plus_one=weight_plus_one, cast=_CASTS[cast],
                 out_dtype=out.dtype if quant == "none" else torch.float32)
        _write(out, rstd, None, scales, scale, quant, min_scale, pow2_scales, r)

    def layer_norm_out(x, weight, bias, eps, out, mean=None, rstd=None, scales=None, scale=None,
                       quant="none", min_scale=0.0, column_major_scales=False,
                       pow2_scales=False, weight_plus_one=False, cast=0):
        r = norm(x, weight, bias, eps, layer=True, weight_plus_one=weight_plus_one,
                 cast=_CASTS[cast], out_dtype=out.dtype if quant == "none" else torch.float32)
        _write(out, rstd, mean, scales, scale, quant, min_scale, pow2_scales, r)

    def fused_add_rms_norm_out(x, residual, weight, eps, out, residual_out, rstd=None,
                               scales=None, scale=None, quant="none", min_scale=0.0,
                               column_major_scales=False, pow2_scales=False,
                               weight_plus_one=False, cast=0):
        s = fused_sum(x, residual)
        residual_out.copy_(s)
        rms_norm_out(s, weight, eps, out, rstd, scales, scale, quant, min_scale,
                     column_major_scales, pow2_scales, weight_plus_one, cast)

    def fused_add_layer_norm_out(x, residual, weight, bias, eps, out, residual_out, mean=None,
                                 rstd=None, scales=None, scale=None, quant="none", min_scale=0.0,
                                 column_major_scales=False, pow2_scales=False,
                                 weight_plus_one=False, cast=0):
        s = fused_sum(x, residual)
        residual_out.copy_(s)
        layer_norm_out(s, weight, bias, eps, out, mean, rstd, scales, scale, quant, min_scale,
                       column_major_scales, pow2_scales, weight_plus_one, cast)

    def qk_rms_norm_out(x, weight, eps, out, cast=0):
        out.copy_(rms_norm(x, weight, eps, out.dtype, False, cast))

    for fn in (rms_norm, layer_norm, fused_add_rms_norm, fused_add_layer_norm, qk_rms_norm,
               rms_norm_out, layer_norm_out, fused_add_rms_norm_out, fused_add_layer_norm_out,
               qk_rms_norm_out):
        lib.impl(fn.__name__, fn, "CPU")


# ---------------------------------------------------------------------------
# A small decoder (embedding, MLP blocks with fused add + norm, a head), in two
# versions with the same parameters: normjit modules, and torch's own.

class Decoder(torch.nn.Module):
    def __init__(self, vocab=64, hidden=128, layers=3, ffn=256, use_normjit=True, layer_norm=False):
        super().__init__()
        import normjit.nn as njnn
        self.use_normjit = use_normjit
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.ups = torch.nn.ModuleList(torch.nn.Linear(hidden, ffn) for _ in range(layers))
        self.downs = torch.nn.ModuleList(torch.nn.Linear(ffn, hidden) for _ in range(layers))
        if use_normjit:
            fused = (njnn.FusedAddLayerNorm if layer_norm else njnn.FusedAddRMSNorm)
            plain = njnn.LayerNorm if layer_norm else njnn.RMSNorm
        else:
            fused = plain = torch.nn.LayerNorm if layer_norm else torch.nn.RMSNorm
        eps = {} if layer_norm else {"eps": 1e-6}
        self.norms = torch.nn.ModuleList(fused(hidden, **eps) for _ in range(layers))
        self.final = plain(hidden, **eps)
        self.head = torch.nn.Linear(hidden, vocab, bias=False)

    def forward(self, tokens):
        h = self.embed(tokens)
        residual = torch.zeros_like(h)
        for up, down, norm_ in zip(self.ups, self.downs, self.norms):
            if self.use_normjit:
                x, residual = norm_(h, residual)
            else:
                residual = h + residual
                x = norm_(residual)
            h = down(torch.nn.functional.gelu(up(x)))
        return self.head(self.final(h + residual))
