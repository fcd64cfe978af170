#!/usr/bin/env python3
"""The Python binding without a GPU or torch: it finds and loads the library,
reports its version, raises NormjitError carrying the library's status and
message, and compiles kernels through a compile-only context's prepare.

usage: test_unit_python.py LIBNORMJIT PYTHON_DIR EXPECTED_VERSION
"""
import os
import sys
import tempfile


def main():
    lib, pydir, expected = sys.argv[1:4]
    os.environ["NORMJIT_LIBRARY"] = lib
    os.environ["NORMJIT_CUDA_DRIVER"] = "/nonexistent/libcuda.so.1"  # no driver, on any machine
    sys.path.insert(0, pydir)
    import normjit

    assert normjit.version() == expected, (normjit.version(), expected)

    # No driver: a context bound to a GPU cannot be made, and the error says why.
    try:
        normjit.Context()
    except normjit.NormjitError as e:
        assert e.status == -4 and e.name == "NORMJIT_ENODRIVER", (e.status, e.name)
        assert "cannot load the CUDA driver" in e.message, e.message
    else:
        raise AssertionError("Context() without a driver did not raise")

    # A bad argument is reported with the library's message.
    with tempfile.TemporaryDirectory() as cache:
        ctx = normjit.Context.__new__(normjit.Context)
        lib_handle = normjit._library()
        opts = normjit._CtxOptions()
        opts.struct_size = 8  # too small on purpose
        import ctypes
        handle = ctypes.c_void_p()
        status = lib_handle.normjit_ctx_create(ctypes.byref(handle), ctypes.byref(opts))
        assert status == -1, status
        assert b"struct_size is 8" in lib_handle.normjit_last_error()

        # A compile-only context compiles for sm_90 into the given cache.
        opts = normjit._CtxOptions()
        opts.struct_size = ctypes.sizeof(normjit._CtxOptions)
        opts.cache_dir = cache.encode()
        opts.offline_arch = 90
        assert lib_handle.normjit_ctx_create(ctypes.byref(handle), ctypes.byref(opts)) == 0
        ctx._handle, ctx._lib, ctx._keep = handle, lib_handle, []
        stats = ctx.prepare(normjit.RMSNORM, [2880], normjit.BF16)
        assert stats["compiled"] >= 1, stats
        again = ctx.prepare(normjit.RMSNORM, [2880], normjit.BF16)
        assert again["compiled"] == 0 and again["in_memory"] >= 1, again
        # Launching from a compile-only context is refused, with its status.
        try:
            ctx.launch(normjit.RMSNORM, 1, 2880, 0x100000, 0x200000, normjit.BF16, normjit.BF16)
        except normjit.NormjitError as e:
            assert e.name == "NORMJIT_ENODEVICE", e.name
        else:
            raise AssertionError("launch on a compile-only context did not raise")
        ctx.close()
    print("python binding: ok")


if __name__ == "__main__":
    main()
