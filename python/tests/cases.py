"""Bad arguments and the error each must raise: the CPU test runs them on fake CUDA
tensors (the Python checks of the fake implementations), the GPU test on real ones
(the native checks). One line per case: (name, call, exception type, words of the
message)."""
import torch


def bad_argument_cases(nj, make, cpu):
    """make(*shape, dtype=torch.bfloat16) gives a CUDA tensor; cpu(*shape) a CPU one."""
    x = make(4, 64)
    w = make(64)
    w32 = make(64, dtype=torch.float32)
    scale = make(1, dtype=torch.float32)
    return [
        ("x of integers", lambda: nj.rms_norm(make(4, 64, dtype=torch.int32), w),
         TypeError, "x has dtype"),
        ("x without dimensions", lambda: nj.rms_norm(make(dtype=torch.bfloat16), None),
         ValueError, "x must have at least 1"),
        ("weight of another size", lambda: nj.rms_norm(x, make(63)),
         ValueError, "weight must have shape [64]"),
        ("weight of integers", lambda: nj.rms_norm(x, make(64, dtype=torch.int32)),
         TypeError, "weight has dtype"),
        ("weight on the CPU", lambda: nj.rms_norm(x, cpu(64)), ValueError, "weight is on cpu"),
        ("weight not contiguous", lambda: nj.rms_norm(x, make(128)[::2]),
         ValueError, "weight must be contiguous"),
        ("bias of another dtype than weight", lambda: nj.layer_norm(x, w32, make(64)),
         TypeError, "bias has dtype"),
        ("bias on the CPU", lambda: nj.layer_norm(x, w, cpu(64)), ValueError, "bias is on cpu"),
        ("out of another shape", lambda: nj.rms_norm(x, w, out=make(4, 32)),
         ValueError, "out has shape"),
        ("out transposed", lambda: nj.rms_norm(x, w, out=make(64, 4).t()),
         ValueError, "out needs a unit stride"),
        ("out of integers", lambda: nj.rms_norm(x, w, out=make(4, 64, dtype=torch.int32)),
         TypeError, "out has dtype"),
        ("out_dtype int8", lambda: nj.rms_norm(x, w, out_dtype=torch.int8),
         TypeError, "out_dtype"),
        ("unknown cast", lambda: nj.rms_norm(x, w, cast="mistral"), ValueError, "cast must be"),
        ("residual of another shape", lambda: nj.fused_add_rms_norm(x, make(4, 32), w),
         ValueError, "residual has shape"),
        ("residual on the CPU", lambda: nj.fused_add_rms_norm(x, cpu(4, 64), w),
         ValueError, "residual is on cpu"),
        ("residual_out of another dtype",
         lambda: nj.fused_add_rms_norm(x, make(4, 64), w,
                                       residual_out=make(4, 64, dtype=torch.float32)),
         TypeError, "residual_out has dtype"),
        ("qk_rms_norm of one dimension", lambda: nj.qk_rms_norm(make(64), w),
         ValueError, "x must have at least 2"),
        ("qk_rms_norm weight of another size", lambda: nj.qk_rms_norm(make(4, 2, 64), make(32)),
         ValueError, "weight must have shape [64]"),
        ("scale for token quantization", lambda: nj.rms_norm(x, w, quant="fp8-token",
                                                             scale=scale),
         ValueError, "scale is the static scale"),
        ("scale_ub for tensor quantization",
         lambda: nj.rms_norm(x, w, quant="fp8-tensor", scale=scale, scale_ub=scale),
         ValueError, "scale_ub caps token quantization"),
        ("tensor quantization without scale", lambda: nj.rms_norm(x, w, quant="fp8-tensor"),
         ValueError, "needs scale"),
        ("scale in fp16", lambda: nj.rms_norm(x, w, quant="fp8-tensor",
                                              scale=make(1, dtype=torch.float16)),
         TypeError, "scale must be float32"),
        ("scale of two values", lambda: nj.rms_norm(x, w, quant="fp8-tensor",
                                                    scale=make(2, dtype=torch.float32)),
         ValueError, "scale must hold one value"),
        ("out in bf16 for fp8 codes", lambda: nj.rms_norm(x, w, quant="fp8-token", out=make(4, 64)),
         TypeError, "out has dtype"),
        ("hidden not a multiple of the group", lambda: nj.rms_norm(make(4, 96), make(96),
                                                                   quant="fp8-group64"),
         ValueError, "not a multiple of the group size"),
        ("unknown quant", lambda: nj.rms_norm(x, w, quant="fp9-token"), nj.NormjitError, ""),
    ]


def grad_refusal_cases(nj, make):
    """Calls that write into given tensors while an input requires grad."""
    x = make(4, 64).requires_grad_()
    w = make(64)
    return [
        ("out= with an input that requires grad", lambda: nj.rms_norm(x, w, out=make(4, 64))),
        ("return_rstd with an input that requires grad",
         lambda: nj.rms_norm(x, w, return_rstd=True)),
        ("residual_out= with an input that requires grad",
         lambda: nj.fused_add_rms_norm(x, make(4, 64), w, residual_out=make(4, 64))),
    ]


def check_bad_arguments(nj, make, cpu, extra=()):
    """Run bad_argument_cases (and `extra` cases of the same form): each must raise its
    exception with its words; then grad_refusal_cases, each a RuntimeError saying the
    result is not differentiable."""
    for name, call, exc, words in bad_argument_cases(nj, make, cpu) + list(extra):
        try:
            call()
        except exc as e:
            assert words in str(e), f"{name}: {e!r} lacks {words!r}"
        except Exception as e:
            raise AssertionError(f"{name}: raised {e!r}, not {exc.__name__}")
        else:
            raise AssertionError(f"{name}: nothing raised")
    for name, call in grad_refusal_cases(nj, make):
        try:
            call()
        except RuntimeError as e:
            assert "not differentiable" in str(e), f"{name}: {e}"
        else:
            raise AssertionError(f"{name}: nothing raised")


def opcheck_samples(make):
    """(op, args, kwargs) for torch.library.opcheck of every op; make(*shape, dtype=)
    gives a tensor of random values."""
    n = torch.ops.normjit
    x, r, w, b = make(3, 64), make(3, 64), make(64), make(64)
    g = lambda t: t.clone().requires_grad_()  # noqa: E731
    e = lambda *s, dtype=torch.float32: make(*s, dtype=dtype)  # noqa: E731
    return [
        (n.rms_norm.default, (g(x), g(w), 1e-6), {}),
        (n.rms_norm.default, (x, w, 1e-6, torch.float16, True, 1), {}),
        (n.layer_norm.default, (g(x), g(w), g(b), 1e-5), {}),
        (n.fused_add_rms_norm.default, (g(x), g(r), g(w), 1e-6), {}),
        (n.fused_add_layer_norm.default, (g(x), g(r), g(w), g(b), 1e-6), {}),
        (n.qk_rms_norm.default, (g(x).view(3, 4, 16), g(w[:16]), 1e-6), {}),
        (n.rms_norm_out.default, (x, w, 1e-6, e(3, 64)), {"rstd": e(3)}),
        (n.rms_norm_out.default, (x, w, 1e-6, e(3, 64, dtype=torch.int8)),
         {"scales": e(3, 1), "quant": "int8-token"}),
        (n.layer_norm_out.default, (x, w, b, 1e-6, e(3, 64)), {"mean": e(3), "rstd": e(3)}),
        (n.fused_add_rms_norm_out.default, (x, r.clone(), w, 1e-6, e(3, 64), r.clone()), {}),
        (n.fused_add_layer_norm_out.default, (x, r.clone(), w, b, 1e-6, e(3, 64), r.clone()),
         {}),
        (n.qk_rms_norm_out.default, (x.view(3, 4, 16), w[:16], 1e-6, e(3, 4, 16)), {}),
    ]
