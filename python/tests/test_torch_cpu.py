#!/usr/bin/env python3
"""normjit's torch layer without a GPU: op schemas (mutation annotations), fake
implementations (shapes, dtypes, strides, symbolic batch), argument checks,
torch.compile(fullgraph=True, dynamic batch) forward and backward, gradients
against torch's norms and a float64 gradcheck, the modules' state_dict, and
normjit.hf.patch_model on tiny random HuggingFace models.

The ops' CUDA kernels cannot run here, so the test registers float64 reference
kernels for the CPU (reference.py) and runs the ops on CPU tensors and on fake
CUDA tensors. Both kernel paths are tested, each in its own process: the
native extension (csrc/ops.cpp, built here; its autograd kernels serve CPU
tensors too) and the ctypes fallback.

usage: test_torch_cpu.py [LIBNORMJIT PYTHON_DIR] [--native | --ctypes]
Without --native/--ctypes it runs both. Exits 77 (skip) without torch.
Ends with "N passed, N failed".
"""
import os
import re
import subprocess
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    modes = [a[2:] for a in sys.argv[1:] if a in ("--native", "--ctypes")]
    if len(args) >= 2:
        os.environ["NORMJIT_LIBRARY"] = os.path.abspath(args[0])
        python_dir = os.path.abspath(args[1])
    else:
        python_dir = os.path.dirname(HERE)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        print(f"SKIP: {e.name} is not installed")
        sys.exit(77)
    if not modes:
        passed = failed = 0
        for mode in ("native", "ctypes"):
            r = subprocess.run([sys.executable, __file__, *args, "--" + mode],
                               capture_output=True, text=True)
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr[-4000:] if r.returncode else "")
            counts = re.findall(r"(\d+) passed, (\d+) failed$", r.stdout, re.M)
            if counts:
                passed, failed = passed + int(counts[-1][0]), failed + int(counts[-1][1])
            else:
                failed += 1
        print(f"{passed} passed, {failed} failed")
        sys.exit(1 if failed else 0)
    os.environ["NORMJIT_TORCH_NATIVE"] = "1" if modes[0] == "native" else "0"
    sys.path.insert(0, python_dir)
    sys.path.insert(0, HERE)
    run(modes[0])


# ---------------------------------------------------------------------------

def run(mode):
    import torch
    import normjit
    from normjit import _binding as B
    from normjit import ops
    import reference

    assert ops.kernels == mode, (ops.kernels, mode)
    # FakeTensorMode logs every TypeError raised under it; the checks raise some on purpose.
    import logging
    logging.getLogger("torch._subclasses.fake_tensor").setLevel(logging.CRITICAL)
    _substitute_quant_parser(B)
    results = []

    def test(fn):
        name = f"{mode}: {fn.__name__}"
        try:
            fn()
        except Exception:
            results.append((name, False))
            print(f"FAIL  {name}\n" + "".join("      " + ln + "\n" for ln in
                                             traceback.format_exc().splitlines()[-12:]))
        else:
            results.append((name, True))
            print(f"PASS  {name}")
        return fn

    @test
    def cpu_tensors_are_refused():
        try:
            normjit.rms_norm(torch.randn(2, 8))
        except ValueError as e:
            assert "x is on cpu" in str(e), e
        else:
            raise AssertionError("a CPU tensor was accepted")

    # From here on, the CPU runs the float64 reference kernels.
    ops._cpu_lib._destroy()
    cpu_lib = torch.library.Library("normjit", "FRAGMENT")
    reference.register_cpu_kernels(cpu_lib)

    @test
    def schemas_mark_what_they_write():
        expect = {
            "rms_norm": set(), "layer_norm": set(), "fused_add_rms_norm": set(),
            "fused_add_layer_norm": set(), "qk_rms_norm": set(),
            "rms_norm_out": {"out", "rstd", "scales"},
            "layer_norm_out": {"out", "mean", "rstd", "scales"},
            "fused_add_rms_norm_out": {"out", "residual_out", "rstd", "scales"},
            "fused_add_layer_norm_out": {"out", "residual_out", "mean", "rstd", "scales"},
            "qk_rms_norm_out": {"out"},
        }
        for name, written in expect.items():
            schema = getattr(torch.ops.normjit, name).default._schema
            got = {a.name for a in schema.arguments
                   if a.alias_info is not None and a.alias_info.is_write}
            assert got == written, (name, got, written)
            assert schema.is_mutable == bool(written), name
            assert all(r.alias_info is None for r in schema.returns), name

    @test
    def opcheck_every_op():
        # torch.library.opcheck: schema against observed mutations, fake against real
        # results, autograd registration, and AOT dispatch with static and dynamic shapes.
        import cases
        samples = cases.opcheck_samples(lambda *s, dtype=torch.float32: torch.randn(s).to(dtype))
        for op, args, kwargs in samples:
            result = torch.library.opcheck(op, args, kwargs, raise_exception=False)
            bad = {k: v for k, v in result.items() if v != "SUCCESS"}
            assert not bad, (op, bad)

    @test
    def fake_results_have_the_kernels_layout():
        from torch._subclasses.fake_tensor import FakeTensorMode
        bf16, f32 = torch.bfloat16, torch.float32
        with FakeTensorMode():
            x = torch.empty(3, 5, 256, device="cuda", dtype=bf16)
            w = torch.empty(256, device="cuda", dtype=f32)
            y = normjit.rms_norm(x, w, out_dtype=torch.float16)
            assert (y.shape, y.dtype, y.stride()) == (x.shape, torch.float16, (1280, 256, 1))
            y, rstd = normjit.rms_norm(x, w, return_rstd=True)
            assert rstd.shape == (3, 5) and rstd.dtype == f32
            y, mean, rstd = normjit.layer_norm(x, w, w, return_stats=True)
            assert mean.shape == rstd.shape == (3, 5)
            q, s = normjit.rms_norm(x, w, quant="fp8-token")
            assert q.dtype == torch.float8_e4m3fn and s.shape == (3, 5, 1) and s.dtype == f32
            q, s = normjit.rms_norm(x, w, quant="int8-token")
            assert q.dtype == torch.int8
            q, s = normjit.rms_norm(x, w, quant="fp8-group128")
            assert s.shape == (3, 5, 2) and s.stride() == (10, 2, 1), s.stride()
            q, s = normjit.rms_norm(x, w, quant="fp8-group64", column_major_scales=True)
            # 15 tokens padded to 16: scales[g * 16 + token]
            assert s.shape == (3, 5, 4) and s.stride() == (5, 1, 16), s.stride()
            scale = torch.empty(1, device="cuda", dtype=f32)
            q, s = normjit.rms_norm(x, w, quant="fp8e5m2-tensor", scale=scale)
            assert q.dtype == torch.float8_e5m2 and s is scale
            r = torch.empty(3, 5, 256, device="cuda", dtype=f32)
            y, r2 = normjit.fused_add_rms_norm(x, r, w)
            assert r2 is r and y.dtype == bf16
            y, r2, mean, rstd = normjit.fused_add_layer_norm(x, r, w, w, return_stats=True)
            assert r2 is r and mean.shape == (3, 5)
            q, s, r2 = normjit.fused_add_rms_norm(x, r, w, quant="fp8-token")
            assert q.dtype == torch.float8_e4m3fn and s.shape == (3, 5, 1) and r2 is r
            qkv = torch.empty(7, 3 * 4 * 64, device="cuda", dtype=bf16)
            q_view = qkv[:, :4 * 64].view(7, 4, 64)
            out = normjit.qk_rms_norm(q_view, torch.empty(64, device="cuda", dtype=bf16))
            assert out is q_view

    @test
    def bad_arguments_raise_naming_the_argument():
        from torch._subclasses.fake_tensor import FakeTensorMode
        import cases
        with FakeTensorMode() as fake:
            make = lambda *s, dtype=torch.bfloat16: torch.empty(s, dtype=dtype, device="cuda")  # noqa: E731
            cpu = lambda *s: torch.empty(s, dtype=torch.bfloat16)  # noqa: E731
            cases.check_bad_arguments(normjit, make, cpu)
        del fake

    @test
    def ctypes_kernels_fill_the_norm_args():
        import contextlib
        from unittest import mock
        launched = []

        class Ctx:
            def norm(self, op, args, stream):
                launched.append((op, {f: getattr(args, f) for f, _ in args._fields_}))

        bf16 = torch.bfloat16
        big = torch.zeros(5, 3, 256, dtype=bf16)
        x = big[:, 1]                                   # rows 768 elements apart
        r = torch.zeros(5, 256, dtype=torch.float32)
        w = torch.zeros(256, dtype=torch.float32)
        out = torch.zeros(5, 512, dtype=bf16)[:, :256]
        rstd = torch.zeros(5)
        qkv = torch.zeros(7, 6 * 64, dtype=bf16)
        q = qkv[:, :4 * 64].view(7, 4, 64)
        stream = mock.Mock(cuda_stream=0)
        with mock.patch.object(B, "device_context", lambda index: Ctx()), \
                mock.patch.object(torch.cuda, "device", lambda d: contextlib.nullcontext()), \
                mock.patch.object(torch.cuda, "current_stream", lambda d: stream):
            ops._BODIES["fused_add_rms_norm_out"](x, r, w, 1e-5, out, r, rstd, cast=1, run=True)
            ops._BODIES["qk_rms_norm_out"](q, w[:64], 1e-6, q, run=True)
        (op, a), (op2, b) = launched
        assert op == B.ADD_RMSNORM and op2 == B.QK_RMSNORM
        expect = dict(rows=5, hidden=256, x=x.data_ptr(), y=out.data_ptr(), x_row_stride=768,
                      y_row_stride=512, weight=w.data_ptr(), bias=None, rstd=rstd.data_ptr(),
                      mean=None, x_dtype=B.BF16, y_dtype=B.BF16, weight_dtype=B.F32,
                      residual=r.data_ptr(), residual_out=r.data_ptr(), residual_row_stride=256,
                      residual_out_row_stride=256, residual_dtype=B.F32, quant=0, cast=1,
                      struct_size=ctypes_size(B._NormArgs))
        for field, value in expect.items():
            assert a[field] == value, (field, a[field], value)
        assert abs(a["eps"] - 1e-5) < 1e-9
        expect = dict(rows=7, hidden=64, heads=4, x=q.data_ptr(), y=q.data_ptr(),
                      x_row_stride=384, y_row_stride=384, x_head_stride=64, y_head_stride=64)
        for field, value in expect.items():
            assert b[field] == value, (field, b[field], value)

    @test
    def prepare_asks_for_every_combination():
        import contextlib
        from unittest import mock
        asked = []

        class Ctx:
            def prepare(self, op, hidden, x_dtype, **kw):
                asked.append(dict(op=op, hidden=hidden, x=x_dtype, **kw))
                return {"compiled": 1, "from_disk": 0, "in_memory": 0, "not_cached": 0}

        with mock.patch.object(B, "device_context", lambda index: Ctx()), \
                mock.patch.object(B, "bound_to_device", lambda index: contextlib.nullcontext()):
            stats = normjit.prepare(normjit.fused_add_rms_norm, [4096, 5120], torch.bfloat16,
                                    weight_dtype=[torch.bfloat16, torch.float32],
                                    quant=[None, "fp8-group128"], cast="llama",
                                    column_major_scales=True, device="cuda:0")
            assert stats["compiled"] == 4, stats
            assert {(a["weight_dtype"], a["quant"], a["y_dtype"], a["group_size"])
                    for a in asked} == {(B.BF16, 0, B.BF16, 0), (B.F32, 0, B.BF16, 0),
                                        (B.BF16, B.QUANT_GROUP, B.FP8_E4M3, 128),
                                        (B.F32, B.QUANT_GROUP, B.FP8_E4M3, 128)}, asked
            assert all(a["op"] == B.ADD_RMSNORM and a["hidden"] == [4096, 5120] and
                       a["cast"] == B.CAST_LLAMA and
                       a["norm_flags"] == B.NORM_SCALES_COLUMN_MAJOR for a in asked), asked
            asked.clear()
            normjit.prepare("layernorm", 2880, [torch.float16, torch.float32], device=0,
                            all_alignments=True)
            assert [(a["op"], a["x"], a["flags"]) for a in asked] == [
                (B.LAYERNORM, B.F16, B.PREPARE_ALL_ALIGNMENTS),
                (B.LAYERNORM, B.F32, B.PREPARE_ALL_ALIGNMENTS)], asked
        for bad, exc in (({"op": "softmax"}, ValueError), ({"dtype": torch.float64}, TypeError),
                         ({"cast": "t5"}, ValueError), ({"device": "cpu"}, ValueError)):
            kw = dict(op="rmsnorm", hidden_sizes=[64], dtype=torch.float16, device=0) | bad
            try:
                normjit.prepare(kw.pop("op"), kw.pop("hidden_sizes"), kw.pop("dtype"), **kw)
            except exc:
                pass
            else:
                raise AssertionError(f"prepare with {bad} did not raise {exc.__name__}")

    @test
    def in_place_forms_write_in_place():
        x, r, w = torch.randn(4, 32), torch.randn(4, 32), torch.randn(32)
        r0 = r.clone()
        y, r2 = normjit.fused_add_rms_norm(x, r, w)
        assert r2 is r and torch.equal(r, reference.fused_sum(x, r0))
        v = r._version
        y, r3 = normjit.fused_add_rms_norm(x, r, w, out=x)
        assert y is x and r._version > v
        qk = torch.randn(3, 2, 32)
        out = normjit.qk_rms_norm(qk[:, :, :], torch.randn(32))
        assert out.data_ptr() == qk.data_ptr()
        # When autograd records the call, the sum is a new tensor and residual is untouched.
        xg = torch.randn(4, 32, requires_grad=True)
        r = torch.randn(4, 32)
        r0 = r.clone()
        y, s = normjit.fused_add_rms_norm(xg, r, w)
        assert s is not r and torch.equal(r, r0) and y.requires_grad

    @test
    def gradients_match_torch_norms():
        torch.manual_seed(0)
        for layer in (False, True):
            ref = (torch.nn.LayerNorm(48) if layer else torch.nn.RMSNorm(48, eps=1e-6)).double()
            with torch.no_grad():
                ref.weight.normal_()
                if layer:
                    ref.bias.normal_()
            mine = (normjit.nn.LayerNorm(48) if layer else normjit.nn.RMSNorm(48, eps=1e-6))
            mine = mine.double()
            mine.load_state_dict(ref.state_dict())
            x = torch.randn(5, 3, 48, dtype=torch.float64, requires_grad=True)
            g = torch.randn(5, 3, 48, dtype=torch.float64)
            grads = []
            for m in (ref, mine):
                x.grad = None
                m.zero_grad()
                (m(x) * g).sum().backward()
                grads.append([x.grad.clone()] + [p.grad.clone() for p in m.parameters()])
            for a, b in zip(*grads):
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)

    @test
    def gradcheck_float64():
        torch.manual_seed(1)
        d = dict(dtype=torch.float64, requires_grad=True)
        x, r, w, b = (torch.randn(3, 16, **d), torch.randn(3, 16, **d), torch.randn(16, **d),
                      torch.randn(16, **d))
        checks = {
            "rms_norm": lambda x, w: normjit.rms_norm(x, w, 1e-5),
            "rms_norm 1+w": lambda x, w: normjit.rms_norm(x, w, 1e-5, weight_plus_one=True),
            "rms_norm gemma": lambda x, w: normjit.rms_norm(x, w, 1e-5, cast="gemma"),
            "layer_norm": lambda x, w, b: normjit.layer_norm(x, w, b, 1e-5),
            "fused_add_rms_norm": lambda x, r, w: normjit.fused_add_rms_norm(x, r, w, 1e-5),
            "fused_add_layer_norm": lambda x, r, w, b: normjit.fused_add_layer_norm(x, r, w, b),
            "qk_rms_norm": lambda x, w: normjit.qk_rms_norm(x.view(3, 2, 8), w[:8], 1e-5),
        }
        inputs = {1: (x,), 2: (x, w), 3: (x, r, w), 4: (x, r, w, b)}
        for name, fn in checks.items():
            n = fn.__code__.co_argcount
            args = inputs[n] if name != "layer_norm" else (x, w, b)
            assert torch.autograd.gradcheck(fn, args), name

    @test
    def state_dict_round_trips_with_torch():
        pairs = [
            (torch.nn.RMSNorm(32), normjit.nn.RMSNorm(32)),
            (torch.nn.RMSNorm((4, 8), eps=1e-5), normjit.nn.RMSNorm((4, 8), eps=1e-5)),
            (torch.nn.RMSNorm(32, elementwise_affine=False),
             normjit.nn.RMSNorm(32, elementwise_affine=False)),
            (torch.nn.LayerNorm(32), normjit.nn.LayerNorm(32)),
            (torch.nn.LayerNorm(32, bias=False), normjit.nn.LayerNorm(32, bias=False)),
            (torch.nn.LayerNorm(32, elementwise_affine=False),
             normjit.nn.LayerNorm(32, elementwise_affine=False)),
        ]
        for theirs, mine in pairs:
            with torch.no_grad():
                for p in theirs.parameters():
                    p.normal_()
            assert list(theirs.state_dict()) == list(mine.state_dict()), theirs
            mine.load_state_dict(theirs.state_dict())
            theirs2 = type(theirs)(theirs.normalized_shape, eps=theirs.eps,
                                   elementwise_affine=theirs.elementwise_affine,
                                   **({"bias": theirs.bias is not None}
                                      if isinstance(theirs, torch.nn.LayerNorm) else {}))
            theirs2.load_state_dict(mine.state_dict())
            assert mine.eps == theirs.eps and mine.normalized_shape == theirs.normalized_shape
            x = torch.randn(2, 3, *theirs.normalized_shape)
            torch.testing.assert_close(mine(x), theirs(x), rtol=1e-5, atol=1e-5)

    @test
    def compiled_decoder_fullgraph_dynamic_batch():
        import torch._dynamo
        torch._dynamo.reset()
        torch.manual_seed(2)
        for layer in (False, True):
            torch._dynamo.reset()
            model = reference.Decoder(use_normjit=True, layer_norm=layer)
            plain = reference.Decoder(use_normjit=False, layer_norm=layer)
            plain.load_state_dict(model.state_dict())
            frames = []

            def backend(gm, example_inputs):
                frames.append({str(n.target) for n in gm.graph.nodes if n.op == "call_function"})
                from torch._dynamo.backends.common import aot_autograd
                from functorch.compile import make_boxed_func
                return aot_autograd(fw_compiler=lambda g, _: make_boxed_func(g),
                                    bw_compiler=lambda g, _: make_boxed_func(g))(gm, example_inputs)

            compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=backend)
            for batch in (2, 3, 5):
                tokens = torch.randint(0, 64, (batch, 7))
                # One graph serves every batch size: a recompile is an error.
                with torch._dynamo.config.patch(error_on_recompile=batch != 2):
                    out = compiled(tokens)
                torch.testing.assert_close(out, model(tokens))
                torch.testing.assert_close(out, plain(tokens), rtol=1e-4, atol=1e-4)
                out.square().mean().backward()
            ops_in_graph = frames[-1]
            assert any("normjit" in t for t in ops_in_graph), ops_in_graph
            grads = [p.grad.clone() for p in model.parameters()]
            model.zero_grad()
            plain.zero_grad()
            tokens = torch.randint(0, 64, (4, 7))
            plain(tokens).square().mean().backward()
            compiled(tokens).square().mean().backward()
            for p, q in zip(model.parameters(), plain.parameters()):
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5)
            del grads

    @test
    def compiled_in_place_update_reaches_the_caller():
        import torch._dynamo
        torch._dynamo.reset()

        def step(x, residual, w):
            y, residual = normjit.fused_add_rms_norm(x, residual, w)
            return normjit.qk_rms_norm(y.view(4, 2, 16), w[:16]) * 2

        compiled = torch.compile(step, fullgraph=True, dynamic=True, backend="inductor")
        x, r, w = torch.randn(4, 32), torch.randn(4, 32), torch.randn(32)
        r_eager = r.clone()
        expect = step(x, r_eager, w)
        got = compiled(x, r, w)
        torch.testing.assert_close(got, expect)
        torch.testing.assert_close(r, r_eager)

    @test
    def first_call_does_not_import_dynamo():
        # Importing torch._dynamo costs over a second: normjit.ops marks its constant
        # function the way torch.compiler.assume_constant_result does, without it.
        code = (
            "import sys, torch, normjit\n"
            "from normjit import ops\n"
            "assert 'torch._dynamo' not in sys.modules, 'normjit.ops imported torch._dynamo'\n"
            "probe = torch.compiler.assume_constant_result(lambda: 0)\n"
            "marks = {k: v for k, v in vars(probe).items()}\n"
            "assert marks and all(getattr(ops._quant_spec, k, None) == v\n"
            "                     for k, v in marks.items()), marks\n")
        r = python_child(code)
        assert r.returncode == 0, r.stderr[-2000:]

    if mode == "native":
        @test
        def built_extension_loads_without_cpp_extension():
            # This process built (or found) the extension and stamped it; the next one
            # loads it without importing cpp_extension (and setuptools, a third of a second).
            code = ("import sys, torch, normjit\n"
                    "from normjit import ops\n"
                    "assert ops.kernels == 'native', ops.kernels\n"
                    "assert 'torch.utils.cpp_extension' not in sys.modules\n"
                    "assert 'setuptools' not in sys.modules\n")
            r = python_child(code)
            assert r.returncode == 0, r.stderr[-2000:]

        @test
        def build_directory_is_torchs():
            # _native.build_directory() follows cpp_extension._get_build_directory without
            # importing it; compared here in a scratch cache folder (torch's creates it).
            import tempfile
            with tempfile.TemporaryDirectory() as scratch:
                code = ("import torch\n"
                        "from torch.utils import cpp_extension\n"
                        "from normjit import _native\n"
                        "ours = _native.build_directory()\n"
                        "theirs = cpp_extension._get_build_directory(_native.NAME, False)\n"
                        "assert ours == theirs, (ours, theirs)\n")
                env = {k: v for k, v in os.environ.items()
                       if k not in ("NORMJIT_TORCH_EXT_DIR", "TORCH_EXTENSIONS_DIR")}
                for extra in ({}, {"TORCH_EXTENSIONS_DIR": os.path.join(scratch, "ext")}):
                    r = python_child(code, dict(env, **extra, XDG_CACHE_HOME=scratch))
                    assert r.returncode == 0, (extra, r.stderr[-2000:])

    @test
    def compiled_quantized_outputs():
        import torch._dynamo
        torch._dynamo.reset()

        def f(x, r, w, scale):
            q1, s1 = normjit.rms_norm(x, w, quant="fp8-token")
            q2, s2 = normjit.layer_norm(x, w, w, quant="fp8-group64", column_major_scales=True)
            q3, s3, r2 = normjit.fused_add_rms_norm(x, r, w, quant="int8-tensor", scale=scale)
            return q1.float() * s1, q2.float(), s2, q3.float() * s3, r2

        compiled = torch.compile(f, fullgraph=True, dynamic=True, backend="aot_eager")
        for batch in (3, 6):
            x, w = torch.randn(batch, 128), torch.randn(128)
            r, scale = torch.randn(batch, 128), torch.tensor([0.05])
            got, expect = compiled(x, r.clone(), w, scale), f(x, r.clone(), w, scale)
            for a, b in zip(got, expect):
                torch.testing.assert_close(a, b)
            assert got[2].stride() == expect[2].stride() == (1, (batch + 3) // 4 * 4)

    @test
    def patch_model_swaps_every_norm():
        import torch._dynamo
        import transformers
        from normjit import hf
        torch.manual_seed(3)
        small = dict(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                     max_position_embeddings=64)
        configs = {
            "llama": (transformers.LlamaConfig, {}, 2 * 2 + 1),
            "qwen2": (transformers.Qwen2Config, {}, 2 * 2 + 1),
            "qwen3": (transformers.Qwen3Config, {}, 2 * 4 + 1),   # + q_norm, k_norm
            "mistral": (transformers.MistralConfig, {}, 2 * 2 + 1),
            "gemma": (transformers.GemmaConfig, {}, 2 * 2 + 1),
            "gemma2": (transformers.Gemma2Config, {}, 2 * 4 + 1),
            "gemma3": (transformers.Gemma3TextConfig, {"sliding_window": 16}, 2 * 6 + 1),
        }
        for name, (cfg_cls, extra, expect) in configs.items():
            cfg = cfg_cls(**small, **extra)
            model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if "norm" in n:
                        p.normal_(0.0 if name.startswith("gemma") else 1.0, 0.1)
            tokens = torch.randint(0, 97, (2, 9))
            with torch.no_grad():
                before = model(tokens).logits
            keys = list(model.state_dict())
            count = hf.patch_model(model)
            assert count == expect, f"{name}: patched {count}, expected {expect}"
            assert hf.patch_model(model) == 0
            assert list(model.state_dict()) == keys
            with torch.no_grad():
                after = model(tokens).logits
            torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4,
                                       msg=lambda m: f"{name}: {m}")
            # A patched norm compiles whole, also on Gemma 3's transposed q/k layout.
            torch._dynamo.reset()
            norm = [m for m in model.modules() if type(m).__name__ in hf.NORMS][-1]
            compiled = torch.compile(norm, fullgraph=True, dynamic=True, backend="aot_eager")
            x = torch.randn(2, 5, 4, norm.weight.shape[0]).transpose(1, 2)
            with torch.no_grad():
                torch.testing.assert_close(compiled(x), norm(x))
                torch.testing.assert_close(compiled(x.contiguous()), norm(x.contiguous()))
            assert hf.unpatch_model(model) == expect

    passed = sum(ok for _, ok in results)
    print(f"{mode}: {passed} passed, {len(results) - passed} failed")


def python_child(code, env=None):
    """Run `code` in a fresh Python (this one's path, `env` or this environment)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ if env is None else env,
                                   PYTHONPATH=os.pathsep.join(sys.path)))


def ctypes_size(struct):
    import ctypes
    return ctypes.sizeof(struct)


def _substitute_quant_parser(B):
    """Until the library parses --quant names, parse the grammar its header documents."""
    try:
        B.quant_from_name("fp8-token")
        return
    except B.NormjitError as e:
        if e.status != -2:  # NORMJIT_EUNSUPPORTED: the 0.2 stub
            raise
    dtypes = {"fp8": B.FP8_E4M3, "fp8e5m2": B.FP8_E5M2, "int8": B.INT8}
    modes = {"tensor": (B.QUANT_TENSOR, 0), "token": (B.QUANT_TOKEN, 0),
             "group64": (B.QUANT_GROUP, 64), "group128": (B.QUANT_GROUP, 128)}

    def parse(name):
        B.library().normjit_version()  # a ctypes call, as the real parser's: not traceable
        if name == "none":
            return 0, 0, 0
        dtype, _, mode = name.partition("-")
        if dtype not in dtypes or mode not in modes:
            raise B.NormjitError(-1, "NORMJIT_EINVAL", f"unknown quant name {name!r}")
        return (dtypes[dtype], *modes[mode])

    B.quant_from_name = parse


if __name__ == "__main__":
    main()
