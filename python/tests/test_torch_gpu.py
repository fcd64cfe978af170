#!/usr/bin/env python3
"""normjit's torch layer on a GPU: every op x dtype against a float64 reference,
fused add bit-exact against add-then-norm, quantized outputs within one step,
argument checks of the native kernels, gradients of the modules against torch's
norms, a small decoder under torch.compile(fullgraph=True, dynamic batch) and a
CUDA graph, the ops captured in a CUDA graph after prepare, and
normjit.hf.patch_model on tiny random HuggingFace models (per-norm bits and
greedy tokens).

usage: NORMJIT_LIBRARY=build-gpu/src/libnormjit.so python3 python/tests/test_torch_gpu.py
       [--ctypes]   (the ctypes kernels instead of the native ones; by default the
                     native run is followed by a ctypes run of the op tests)
Prints PASS/FAIL per test and "N passed, N failed"; exits 1 on any failure.
"""
import os
import re
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch._dynamo  # noqa: E402

import normjit  # noqa: E402
import reference  # noqa: E402
import cases  # noqa: E402

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
HIDDEN = [64, 1000, 4096, 65536 + 8]  # small, odd, common, past one CTA
CASTS = ["none", "llama", "gemma"]
results = []


def test(fn):
    name = fn.__name__
    try:
        fn()
    except Exception:
        results.append((name, False))
        print(f"FAIL  {name}\n" + "".join("      " + ln + "\n"
                                         for ln in traceback.format_exc().splitlines()[-15:]),
              flush=True)
    else:
        results.append((name, True))
        print(f"PASS  {name}", flush=True)
    return fn


def ulps(a, b):
    """Distance in units in the last place of a's dtype (a and b of one float dtype)."""
    bits = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}
    ia, ib = a.view(bits[a.dtype]).long(), b.view(bits[b.dtype]).long()
    top = 1 << (8 * a.element_size() - 1)
    # Sign-magnitude to an ordered integer line, so that -0 and +0 are neighbours.
    ia = torch.where(ia < 0, -(ia + top), ia)
    ib = torch.where(ib < 0, -(ib + top), ib)
    return (ia - ib).abs()


def code_steps(a, b):
    """Distance in quantization steps between two fp8 or int8 code tensors."""
    if a.dtype == torch.int8:
        return (a.long() - b.long()).abs()
    ia, ib = a.view(torch.uint8).long(), b.view(torch.uint8).long()
    ia = torch.where(ia >= 128, -(ia - 128), ia)
    ib = torch.where(ib >= 128, -(ib - 128), ib)
    return (ia - ib).abs()


def rand(*shape, dtype=torch.bfloat16, scale=1.0):
    return (torch.randn(*shape, device="cuda", dtype=torch.float32) * scale).to(dtype)


def check_close(y, ref, what, max_ulps, cancels=False):
    """y against a float64 reference rounded to y's dtype: every element within max_ulps.

    A float32 result is computed in float32, so its error is absolute at the scale of
    its row: an ulp there is that of the element or of the row's mean magnitude, the
    larger (an output near zero, such as x close to the mean in LayerNorm, keeps the
    absolute error of its inputs). With `cancels` (LayerNorm: x - mean, then + bias) a
    16-bit element may also be off by one ulp of its row's mean magnitude, for the same
    reason.
    """
    if y.dtype == torch.float32:
        err = (y.double() - ref.double()).abs()
        scale = torch.maximum(ref.double().abs(), ref.double().abs().mean(-1, keepdim=True))
        worst = float((err / (scale * 2.0 ** -23)).max())
        assert worst <= max_ulps, f"{what}: {worst:.1f} ulps of the row scale apart " \
                                  f"(max {max_ulps})"
        return float((y == ref.to(y.dtype)).float().mean())
    d = ulps(y, ref.to(y.dtype))
    bad = d > max_ulps
    if cancels:
        mantissa = {torch.float16: 10, torch.bfloat16: 7}[y.dtype]
        row = ref.double().abs().mean(-1, keepdim=True) * 2.0 ** -mantissa
        bad &= (y.double() - ref.double()).abs() > row
    assert not bool(bad.any()), f"{what}: {int(d[bad].max())} ulps apart (max {max_ulps})"
    return float((d == 0).float().mean())


# ---------------------------------------------------------------------------

def op_tests():
    @test
    def bad_arguments_raise_naming_the_argument():
        make = lambda *s, dtype=torch.bfloat16: torch.zeros(s, dtype=dtype, device="cuda")  # noqa: E731
        cpu = lambda *s: torch.zeros(s, dtype=torch.bfloat16)  # noqa: E731
        cases.check_bad_arguments(normjit, make, cpu, extra=[
            ("x on the CPU", lambda: normjit.rms_norm(cpu(4, 64)), ValueError, "x is on cpu")])

    @test
    def opcheck_every_op():
        # torch.library.opcheck on the CUDA kernels: schema against observed mutations,
        # fake against real results, autograd registration, AOT dispatch.
        for dtype in (torch.float32, torch.bfloat16):
            make = lambda *s, dtype=dtype: rand(*s, dtype=torch.float32).to(dtype)  # noqa: E731
            for op, args, kwargs in cases.opcheck_samples(make):
                result = torch.library.opcheck(op, args, kwargs, raise_exception=False)
                bad = {k: v for k, v in result.items() if v != "SUCCESS"}
                assert not bad, (op, dtype, bad)

    @test
    def every_op_and_dtype_against_float64():
        torch.manual_seed(0)
        worst = 1.0
        for dtype in DTYPES:
            for w_dtype in {dtype, torch.float32}:
                for hidden in HIDDEN:
                    rows = 3 if hidden > 10000 else 37
                    x = rand(rows, hidden, dtype=dtype, scale=3.0)
                    w = rand(hidden, dtype=w_dtype, scale=0.2) + 1
                    b = rand(hidden, dtype=w_dtype)
                    # 16-bit results within one ulp of the float64 value rounded once, or
                    # one more per extra rounding of the llama cast; fp32 ones within a few
                    # (fp32 arithmetic).
                    tol = 1 if dtype != torch.float32 else 64
                    for cast in CASTS:
                        tag = f"{dtype} w {w_dtype} hidden {hidden} cast {cast}"
                        extra = 1 if cast == "llama" and dtype != torch.float32 else 0
                        y = normjit.rms_norm(x, w, 1e-6, cast=cast)
                        ref = reference.norm(x, w, None, 1e-6, cast=cast)[0]
                        worst = min(worst, check_close(y, ref, "rms_norm " + tag, tol + extra))
                        y = normjit.layer_norm(x, w, b, 1e-5, cast=cast)
                        ref = reference.norm(x, w, b, 1e-5, layer=True, cast=cast)[0]
                        worst = min(worst, check_close(y, ref, "layer_norm " + tag,
                                                       tol + 2 * extra, cancels=True))
                    y, rstd = normjit.rms_norm(x, w, 1e-6, return_rstd=True, weight_plus_one=True)
                    ref, _, _, ref_rstd = reference.norm(x, w, None, 1e-6, weight_plus_one=True)
                    check_close(y, ref, "rms_norm 1+w " + tag, tol)
                    torch.testing.assert_close(rstd, ref_rstd.squeeze(-1).float(),
                                               rtol=1e-5, atol=0)
                    y, mean, rstd = normjit.layer_norm(x, w, b, return_stats=True)
                    _, _, ref_mean, ref_rstd = reference.norm(x, w, b, 1e-5, layer=True)
                    torch.testing.assert_close(mean, ref_mean.squeeze(-1).float(),
                                               rtol=1e-5, atol=1e-6)
                    torch.testing.assert_close(rstd, ref_rstd.squeeze(-1).float(),
                                               rtol=1e-5, atol=0)
        print(f"      worst share of exactly rounded results: {worst:.4f}")

    @test
    def strided_inputs_out_and_in_place():
        torch.manual_seed(1)
        for dtype in DTYPES:
            big = rand(16, 3 * 512, dtype=dtype)
            x = big[:, 512:1024]                      # rows at a stride: read in place
            w = rand(512, dtype=dtype) + 1
            expect = normjit.rms_norm(x.contiguous(), w)
            assert torch.equal(normjit.rms_norm(x, w), expect)
            odd = big.view(16, 3, 512).transpose(0, 1)[1:]  # rows not at one stride: a copy
            assert torch.equal(normjit.rms_norm(odd, w), normjit.rms_norm(odd.contiguous(), w))
            out = torch.empty(16, 1024, dtype=dtype, device="cuda")[:, :512]
            assert normjit.rms_norm(x, w, out=out) is out and torch.equal(out, expect)
            x2 = x.clone()
            assert normjit.rms_norm(x2, w, out=x2) is x2 and torch.equal(x2, expect)
            check_close(normjit.rms_norm(x, w, out_dtype=torch.float32),
                        reference.norm(x, w, out_dtype=torch.float32)[0], "fp32 out", 64)

    @test
    def fused_add_is_add_then_norm_bit_for_bit():
        torch.manual_seed(2)
        for dtype in DTYPES:
            for r_dtype in {dtype, torch.float32}:
                for hidden in HIDDEN:
                    rows = 3 if hidden > 10000 else 29
                    x = rand(rows, hidden, dtype=dtype)
                    r = rand(rows, hidden, dtype=r_dtype)
                    # Weights in fp32 when the sum is: the plain norm of it takes those.
                    w_dtype = torch.float32 if r_dtype == torch.float32 else dtype
                    w = rand(hidden, dtype=w_dtype) + 1
                    b = rand(hidden, dtype=w_dtype)
                    s = reference.fused_sum(x, r)
                    for cast in CASTS:
                        tag = f"{dtype}+{r_dtype} hidden {hidden} cast {cast}"
                        res = r.clone()
                        y, res2 = normjit.fused_add_rms_norm(x, res, w, cast=cast)
                        assert res2 is res and torch.equal(res, s), "sum " + tag
                        assert torch.equal(y, normjit.rms_norm(s, w, cast=cast,
                                                               out_dtype=dtype)), "rms " + tag
                        res = r.clone()
                        y, _ = normjit.fused_add_layer_norm(x, res, w, b, cast=cast)
                        assert torch.equal(y, normjit.layer_norm(s, w, b, cast=cast,
                                                                 out_dtype=dtype)), "ln " + tag
                    # The engines' form: y over x, the sum over residual.
                    xx, res = x.clone(), r.clone()
                    y, res2 = normjit.fused_add_rms_norm(xx, res, w, out=xx)
                    assert y is xx and torch.equal(xx, normjit.rms_norm(s, w, out_dtype=dtype))
                    out_r = torch.empty_like(r)
                    y, res2 = normjit.fused_add_rms_norm(x, r, w, residual_out=out_r)
                    assert res2 is out_r and torch.equal(out_r, s)

    @test
    def qk_norm_of_a_fused_qkv_slice():
        torch.manual_seed(3)
        for dtype in DTYPES:
            for head_dim in (64, 128, 256):
                tokens, heads, kv = 19, 8, 2
                qkv = rand(tokens, (heads + 2 * kv) * head_dim, dtype=dtype)
                before = qkv.clone()
                q = qkv[:, :heads * head_dim].view(tokens, heads, head_dim)
                k = qkv[:, heads * head_dim:(heads + kv) * head_dim].view(tokens, kv, head_dim)
                wq, wk = rand(head_dim, dtype=dtype) + 1, rand(head_dim, dtype=dtype) + 1
                ref_q = reference.norm(q, wq, None, 1e-6, cast="llama")[0]
                ref_k = reference.norm(k, wk, None, 1e-6, cast="llama")[0]
                fresh = normjit.qk_rms_norm(q, wq, cast="llama", out=torch.empty_like(q))
                assert normjit.qk_rms_norm(q, wq, cast="llama") is q
                assert normjit.qk_rms_norm(k, wk, cast="llama") is k
                assert torch.equal(q, fresh)
                tol = 1 if dtype != torch.float32 else 64
                check_close(q, ref_q, f"q {dtype} {head_dim}", tol)
                check_close(k, ref_k, f"k {dtype} {head_dim}", tol)
                v = slice((heads + kv) * head_dim, None)
                assert torch.equal(qkv[:, v], before[:, v]), "v was written"
                # Gemma 3's layout: [batch, heads, seq, head_dim] over [batch, seq, heads, dim]
                x = rand(2, 5, heads, head_dim, dtype=dtype).transpose(1, 2)
                y = normjit.rms_norm(x, wq, cast="gemma")
                check_close(y, reference.norm(x, wq, None, 1e-6, cast="gemma")[0], "gemma", tol)

    @test
    def quantized_outputs_within_one_step():
        torch.manual_seed(4)
        names = ["fp8-tensor", "fp8-token", "int8-token", "int8-tensor", "fp8-group64",
                 "fp8-group128", "fp8e5m2-tensor", "fp8e5m2-token"]
        for dtype in (torch.float16, torch.bfloat16):
            for hidden in (128, 4096, 5120):
                x = rand(33, hidden, dtype=dtype, scale=4.0)
                w = rand(hidden, dtype=dtype) + 1
                _, v, _, _ = reference.norm(x, w, None, 1e-6)
                for name in names:
                    for extra in ({}, {"column_major_scales": True}, {"pow2_scales": True}):
                        if extra and "group" not in name:
                            continue
                        qdtype, mode, group = reference._quant_parts(name)
                        scale = (v.abs().amax() / reference.QMAX[qdtype]).float().reshape(1)
                        kw = {"scale": scale} if mode == "tensor" else {}
                        q, scales = normjit.rms_norm(x, w, quant=name, **kw, **extra)
                        rq, rs = reference.quantize(v, qdtype, mode, group, scale=scale,
                                                    pow2=extra.get("pow2_scales", False))
                        tag = f"{name} {extra} {dtype} hidden {hidden}"
                        assert q.dtype == qdtype, tag
                        if rs is not None:
                            assert scales.shape == rs.shape, (tag, scales.shape, rs.shape)
                            torch.testing.assert_close(scales, rs.cuda(), rtol=1e-6, atol=0,
                                                       msg=lambda m: f"{tag}: {m}")
                            if extra.get("column_major_scales"):
                                padded = (33 + 3) // 4 * 4
                                assert scales.stride() == (1, padded), (tag, scales.stride())
                        steps = code_steps(q, rq)
                        assert int(steps.max()) <= 1, f"{tag}: {int(steps.max())} steps apart"
                        exact = float((steps == 0).float().mean())
                        assert exact >= 0.999, f"{tag}: only {exact:.4f} exact"
                # Token scales capped by scale_ub.
                ub = (v.abs().amax(-1).median() / 2).float().reshape(1)
                q, scales = normjit.rms_norm(x, w, quant="fp8-token", scale_ub=ub)
                rq, rs = reference.quantize(v, torch.float8_e4m3fn, "token", scale_ub=ub)
                torch.testing.assert_close(scales, rs, rtol=1e-6, atol=0)
                assert int(code_steps(q, rq).max()) <= 1, "scale_ub"
                # Fused add with quantized output: the sum is still written.
                r = rand(33, hidden, dtype=dtype)
                q, s, r2 = normjit.fused_add_rms_norm(x, r.clone(), w, quant="fp8-token")
                assert q.dtype == torch.float8_e4m3fn and s.shape == (33, 1)

    @test
    def fresh_threads_launch_on_their_streams():
        # A new thread has no CUDA context current until the CUDA runtime makes one so;
        # its first call may be normjit's (the native kernels then make torch's primary
        # context current). Each thread launches on its own stream.
        import threading
        x = rand(64, 2048)
        w = rand(2048) + 1
        expect = normjit.rms_norm(x, w)
        torch.cuda.synchronize()
        got, errors = [None] * 4, []

        def work(i):
            try:
                first = normjit.rms_norm(x, w)  # the thread's first CUDA call
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    y = normjit.rms_norm(x, w)
                    normjit.fused_add_rms_norm(x, y.clone(), w)
                stream.synchronize()
                got[i] = (first, y)
            except Exception as e:  # reported below, from the main thread
                errors.append(e)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert all(torch.equal(a, expect) and torch.equal(b, expect) for a, b in got)

    @test
    def ops_captured_in_a_cuda_graph_after_prepare():
        torch.manual_seed(5)
        hidden, dtype = 3072, torch.bfloat16
        stats = normjit.prepare(normjit.rms_norm, [hidden], dtype,
                                weight_dtype=[dtype, torch.float32], cast=["none", "llama"])
        normjit.prepare("add_rmsnorm", [hidden], dtype)
        normjit.prepare("layernorm", [hidden], dtype, weight_dtype=torch.float32)
        normjit.prepare("qk_rmsnorm", [128], dtype)
        assert sum(stats.values()) > 0, stats
        x = rand(64, hidden, dtype=dtype)
        r = rand(64, hidden, dtype=dtype)
        w, w32 = rand(hidden, dtype=dtype) + 1, rand(hidden, dtype=torch.float32) + 1
        b32 = rand(hidden, dtype=torch.float32)
        qk = rand(64, 4, 128, dtype=dtype)
        wq = rand(128, dtype=dtype)

        def step():
            y1 = normjit.rms_norm(x, w32, cast="llama")
            y2, s = normjit.fused_add_rms_norm(y1, r, w)
            y3 = normjit.layer_norm(s, w32, b32)
            normjit.qk_rms_norm(qk, wq)
            return y3
        r0, qk0 = r.clone(), qk.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            expect = step()
        torch.cuda.current_stream().wait_stream(stream)
        expect_r, expect_qk = r.clone(), qk.clone()
        graph = torch.cuda.CUDAGraph()
        r.copy_(r0)
        qk.copy_(qk0)
        with torch.cuda.graph(graph):
            got = step()
        r.copy_(r0)
        qk.copy_(qk0)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(got, expect) and torch.equal(r, expect_r) and torch.equal(qk, expect_qk)


def module_tests():
    @test
    def module_gradients_match_torch():
        # normjit's modules against torch's, fed the same values: torch's run in fp32 (for
        # bf16 inputs too, so that the reference is not itself rounded to bf16).
        torch.manual_seed(6)
        for dtype in (torch.float32, torch.bfloat16):
            for kind in ("rms", "layer", "fused_rms", "fused_layer"):
                layer, fused = "layer" in kind, kind.startswith("fused")
                ref = (torch.nn.LayerNorm(1024) if layer else torch.nn.RMSNorm(1024, eps=1e-6))
                ref = ref.cuda()
                with torch.no_grad():
                    ref.weight.normal_(1.0, 0.2)
                    if layer:
                        ref.bias.normal_(0.0, 0.2)
                if fused:
                    mine = (normjit.nn.FusedAddLayerNorm(1024) if layer else
                            normjit.nn.FusedAddRMSNorm(1024, eps=1e-6))
                else:
                    mine = normjit.nn.LayerNorm(1024) if layer else normjit.nn.RMSNorm(1024,
                                                                                       eps=1e-6)
                mine = mine.cuda().to(dtype)
                mine.load_state_dict(ref.state_dict())
                ref.load_state_dict(mine.state_dict())  # the same (rounded) values
                x, r = rand(8, 16, 1024, dtype=dtype), rand(8, 16, 1024, dtype=dtype)
                g, g2 = rand(8, 16, 1024), rand(8, 16, 1024)
                grads = []
                for m, t in ((ref, torch.float32), (mine, dtype)):
                    xi, ri = x.to(t).requires_grad_(), r.to(t).requires_grad_()
                    if fused:
                        if m is ref:
                            s = (xi + ri).to(dtype).to(t)  # the sum rounds to the inputs' dtype
                            y = m(s)
                        else:
                            y, s = m(xi, ri)
                        ((y.float() * g).sum() + (s.float() * g2).sum()).backward()
                        grads.append([xi.grad, ri.grad] + [p.grad for p in m.parameters()])
                    else:
                        (m(xi).float() * g).sum().backward()
                        grads.append([xi.grad] + [p.grad for p in m.parameters()])
                tol = 1e-4 if dtype == torch.float32 else 2e-2
                for i, (a, b_) in enumerate(zip(*grads)):
                    err = float((b_.float() - a.float()).abs().max() / a.float().abs().max())
                    assert err <= tol, f"{kind} {dtype}: gradient {i} off by {err:.2e} of its max"

    @test
    def decoder_compiled_dynamic_batch_and_cuda_graph():
        torch.manual_seed(7)
        for layer in (False, True):
            torch._dynamo.reset()
            model = reference.Decoder(hidden=256, ffn=512, use_normjit=True,
                                      layer_norm=layer).cuda()
            plain = reference.Decoder(hidden=256, ffn=512, use_normjit=False,
                                      layer_norm=layer).cuda()
            plain.load_state_dict(model.state_dict())
            fused = normjit.fused_add_layer_norm if layer else normjit.fused_add_rms_norm
            normjit.prepare(fused, [256], torch.float32)
            normjit.prepare(normjit.layer_norm if layer else normjit.rms_norm, [256],
                            torch.float32)
            with torch.no_grad():
                compiled = torch.compile(model, fullgraph=True, dynamic=True)
                for batch in (2, 3, 5):
                    tokens = torch.randint(0, 64, (batch, 7), device="cuda")
                    with torch._dynamo.config.patch(error_on_recompile=batch != 2):
                        out = compiled(tokens)
                    torch.testing.assert_close(out, model(tokens), rtol=1e-5, atol=1e-5)
                    torch.testing.assert_close(out, plain(tokens), rtol=1e-4, atol=1e-4)
                static = torch.randint(0, 64, (4, 7), device="cuda")
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(2):
                        compiled(static)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_out = compiled(static)
                for _ in range(3):
                    static.copy_(torch.randint(0, 64, (4, 7), device="cuda"))
                    graph.replay()
                    torch.testing.assert_close(static_out, plain(static), rtol=1e-4, atol=1e-4)
                    torch.testing.assert_close(static_out, model(static), rtol=1e-5, atol=1e-5)
            # Training through the compiled model: gradients as torch's modules give.
            compiled = torch.compile(model, fullgraph=True, dynamic=True)
            tokens = torch.randint(0, 64, (3, 7), device="cuda")
            compiled(tokens).square().mean().backward()
            plain(tokens).square().mean().backward()
            for (n, p), q in zip(model.named_parameters(), plain.parameters()):
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5,
                                           msg=lambda m: f"{n}: {m}")

    @test
    def patch_model_bits_and_greedy_tokens():
        import transformers
        from normjit import hf
        small = dict(vocab_size=512, hidden_size=256, intermediate_size=512,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                     head_dim=64, max_position_embeddings=128)
        configs = {
            "llama": (transformers.LlamaConfig, {}),
            "qwen2": (transformers.Qwen2Config, {}),
            "qwen3": (transformers.Qwen3Config, {}),
            "mistral": (transformers.MistralConfig, {}),
            "gemma2": (transformers.Gemma2Config, {"sliding_window": 32}),
            "gemma3": (transformers.Gemma3TextConfig, {"sliding_window": 32}),
        }
        for name, (cfg_cls, extra) in configs.items():
            torch.manual_seed(8)
            cfg = cfg_cls(**small, **extra)
            model = transformers.AutoModelForCausalLM.from_config(cfg).to("cuda",
                                                                          torch.bfloat16).eval()
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if "norm" in n:
                        p.normal_(0.0 if name.startswith("gemma") else 1.0, 0.1)
            prompt = torch.randint(0, 512, (4, 12), device="cuda")
            # Each norm's inputs and outputs under the model's own code...
            seen = []
            hooks = [m.register_forward_hook(
                lambda m, i, o: seen.append((m, i[0].clone(), o.clone())))
                for m in model.modules() if type(m).__name__ in hf.NORMS]
            with torch.no_grad():
                model(prompt)
            for h in hooks:
                h.remove()
            with torch.no_grad():
                before = model.generate(prompt, max_new_tokens=12, do_sample=False)
            count = hf.patch_model(model)
            assert count == len({id(m) for m, _, _ in seen}), (name, count)
            # ... against normjit's on the same inputs.
            worst = 1.0
            with torch.no_grad():
                for m, i, o in seen:
                    y = m(i)
                    assert y.dtype == o.dtype and y.shape == o.shape, name
                    d = ulps(y.contiguous(), o.contiguous())
                    # The llama cast rounds twice: a sum of squares reduced in another order
                    # can move the first rounding by one ulp, and the product by two.
                    most = 2 if hf.NORMS[type(m).__name__][0] == "llama" else 1
                    assert int(d.max()) <= most, \
                        f"{name}: {type(m).__name__} {int(d.max())} ulps"
                    worst = min(worst, float((d == 0).float().mean()))
                after = model.generate(prompt, max_new_tokens=12, do_sample=False)
            assert worst >= 0.999, f"{name}: a norm has only {worst:.5f} of its bits equal"
            assert torch.equal(after, before), f"{name}: greedy tokens differ"
            print(f"      {name}: {count} norms, worst per-norm equal bits {worst:.5f}, "
                  "greedy tokens equal")

    @test
    def library_messages_reach_stderr_with_normjit_log():
        code = ("import torch, normjit; x = torch.randn(2, 192, device='cuda'); "
                "normjit.rms_norm(x, None); torch.cuda.synchronize()")
        env = dict(os.environ, NORMJIT_LOG="debug",
                   NORMJIT_CACHE_DIR="/proc/normjit-no-such-dir/cache")
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, cwd=os.path.dirname(HERE))
        assert r.returncode == 0, r.stderr[-2000:]
        assert "normjit: WARNING" in r.stderr, r.stderr[-2000:]

    @test
    def first_call_during_a_capture_creates_the_context_without_breaking_it():
        # A fresh process whose first normjit call is inside a CUDA graph capture: the
        # context is created there (no synchronization, no allocation, or the capture
        # would be invalidated) and the kernel, not prepared, is refused with ENOTREADY.
        code = """if True:
            import torch, normjit
            x = torch.randn(4, 640, device="cuda", dtype=torch.float16)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                y = x * 2
                try:
                    normjit.rms_norm(x, None)
                except normjit.NormjitError as e:
                    print(e.name)
            g.replay()
            torch.cuda.synchronize()
            print("capture ok", bool(torch.equal(y, x * 2)))
        """
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=os.path.dirname(HERE))
        assert r.returncode == 0, r.stderr[-3000:]
        assert "NORMJIT_ENOTREADY" in r.stdout and "capture ok True" in r.stdout, r.stdout

    @test
    def native_kernels_are_in_use():
        from normjit import ops
        assert ops.kernels == "native", ops.kernels


def main():
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device")
        sys.exit(77)
    ctypes_only = "--ctypes" in sys.argv
    if ctypes_only:
        os.environ["NORMJIT_TORCH_NATIVE"] = "0"
    with tempfile.TemporaryDirectory() as cache:
        os.environ.setdefault("NORMJIT_CACHE_DIR", cache)
        from normjit import ops
        print(f"normjit {normjit.version()}, torch {torch.__version__}, "
              f"{torch.cuda.get_device_name()}, {ops.kernels} kernels", flush=True)
        op_tests()
        if not ctypes_only:
            module_tests()
        passed = sum(ok for _, ok in results)
        failed = len(results) - passed
        if not ctypes_only:  # same kernel cache: the ctypes run loads what this one compiled
            print("-- the same op tests with the ctypes kernels", flush=True)
            r = subprocess.run([sys.executable, __file__, "--ctypes"], capture_output=True,
                               text=True)
            print("\n".join("   " + ln for ln in r.stdout.splitlines()), flush=True)
            counts = re.findall(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
            if counts and r.returncode in (0, 1):
                passed, failed = passed + int(counts[-1][0]), failed + int(counts[-1][1])
            else:
                print(r.stderr[-3000:])
                failed += 1
    print(f"{'PASS' if not failed else 'FAIL'}: {passed} passed, {failed} failed")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
