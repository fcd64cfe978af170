#!/usr/bin/env python3
"""The Python binding without a GPU or torch: it finds and loads the library,
reports its version, raises NormjitError carrying the library's status and
message, compiles kernels through a compile-only context's prepare, and passes
the library's messages to the "normjit" logger.

usage: test_unit_python.py LIBNORMJIT PYTHON_DIR EXPECTED_VERSION [NAME=SIZE ...]
where each NAME=SIZE is the C compiler's sizeof of a header struct (or
offsetof, as struct.field), which the binding's ctypes declarations must match.
"""
import ctypes
import logging
import os
import sys
import tempfile


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def main():
    lib, pydir, expected = sys.argv[1:4]
    c_layout = dict(arg.split("=") for arg in sys.argv[4:])
    os.environ["NORMJIT_LIBRARY"] = lib
    os.environ["NORMJIT_CUDA_DRIVER"] = "/nonexistent/libcuda.so.1"  # no driver, on any machine
    sys.path.insert(0, pydir)
    import normjit
    from normjit import _binding

    assert normjit.version() == expected, (normjit.version(), expected)
    assert normjit.__version__ == expected, normjit.__version__
    assert "torch" not in sys.modules, "importing normjit imported torch"

    # No driver: a context bound to a GPU cannot be made, and the error says why.
    try:
        normjit.Context()
    except normjit.NormjitError as e:
        assert e.status == -4 and e.name == "NORMJIT_ENODRIVER", (e.status, e.name)
        assert "cannot load the CUDA driver" in e.message, e.message
    else:
        raise AssertionError("Context() without a driver did not raise")

    # A bad argument is reported with the library's message.
    library = _binding.library()
    opts = _binding._CtxOptions()
    opts.struct_size = 8  # too small on purpose
    handle = ctypes.c_void_p()
    assert library.normjit_ctx_create(ctypes.byref(handle), ctypes.byref(opts)) == -1
    assert b"struct_size is 8" in library.normjit_last_error()

    # The header's structs as the binding declares them.
    structs = {"normjit_norm_args": _binding._NormArgs,
               "normjit_prepare_args": _binding._PrepareArgs,
               "normjit_ctx_options": _binding._CtxOptions,
               "normjit_prepare_stats": _binding._PrepareStats}
    for name, value in c_layout.items():
        struct, _, field = name.partition(".")
        ours = getattr(structs[struct], field).offset if field else ctypes.sizeof(structs[struct])
        assert ours == int(value), f"{name}: C says {value}, the binding {ours}"
    assert _binding.op_from_name("layernorm") == _binding.LAYERNORM
    assert _binding.op_name(_binding.RMSNORM) == "rmsnorm"
    assert _binding.quant_from_name("none") == (0, 0, 0)

    # Library messages reach the "normjit" logger: a cache folder that cannot be
    # made leaves the kernels in memory, with a warning.
    collect = Collect()
    _binding.logger.addHandler(collect)
    _binding.logger.setLevel(logging.DEBUG)
    ctx = normjit.Context(cache_dir="/proc/normjit-no-such-dir/cache", offline_arch=90)
    ctx.prepare(normjit.RMSNORM, [64], normjit.F16)
    ctx.close()
    _binding.logger.removeHandler(collect)
    assert any(r.levelno == logging.WARNING for r in collect.records), \
        [r.getMessage() for r in collect.records]

    with tempfile.TemporaryDirectory() as cache:
        # A compile-only context compiles for sm_90 into the given cache.
        ctx = normjit.Context(cache_dir=cache, offline_arch=90)
        stats = ctx.prepare(normjit.RMSNORM, [2880], normjit.BF16)
        assert stats["compiled"] >= 1, stats
        again = ctx.prepare(normjit.RMSNORM, [2880], normjit.BF16)
        assert again["compiled"] == 0 and again["in_memory"] >= 1, again
        # Launching from a compile-only context is refused, with its status.
        args = _binding._NormArgs()
        args.struct_size = ctypes.sizeof(args)
        args.rows, args.hidden = 1, 2880
        args.x, args.y = 0x100000, 0x200000
        args.x_dtype = args.y_dtype = normjit.BF16
        try:
            ctx.norm(normjit.RMSNORM, args)
        except normjit.NormjitError as e:
            assert e.name == "NORMJIT_ENODEVICE", e.name
        else:
            raise AssertionError("launch on a compile-only context did not raise")
        ctx.close()
    print("python binding: ok")


if __name__ == "__main__":
    main()
