"""Build and load the native kernels of the torch ops (csrc/ops.cpp).

The extension is compiled against the installed torch with
torch.utils.cpp_extension.load on first use and cached: under
$NORMJIT_TORCH_EXT_DIR if set, else torch's extension folder
($TORCH_EXTENSIONS_DIR or its default). It is linked to the libnormjit this
process loaded, so both share one library and its contexts.
"""
import os

from . import _binding

NAME = "normjit_torch_ops"
_HERE = os.path.dirname(os.path.abspath(__file__))


def header_dir(library):
    """The folder holding normjit.h: the package's own include/ (an installed
    package), this source tree's include/, or the include/ beside the library's
    lib/ folder (a `meson install` prefix)."""
    libdir = os.path.dirname(library)
    candidates = [os.path.join(_HERE, "include"),
                  os.path.join(os.path.dirname(os.path.dirname(_HERE)), "include"),
                  os.path.join(libdir, os.pardir, "include"),
                  os.path.join(libdir, os.pardir, os.pardir, "include")]
    for d in candidates:
        if os.path.isfile(os.path.join(d, "normjit.h")):
            return os.path.normpath(d)
    raise FileNotFoundError("normjit.h is in none of " + ", ".join(map(os.path.normpath,
                                                                        candidates)))


def load(verbose=False):
    """Compile (if needed) and load the extension, which registers the CUDA and
    Autograd kernels of the ops defined in ops.py. Raises on any failure."""
    from torch.utils import cpp_extension

    lib = _binding.loaded_library_path()
    build_dir = None
    root = os.environ.get("NORMJIT_TORCH_EXT_DIR")
    if root:
        build_dir = os.path.join(root, NAME)
        os.makedirs(build_dir, exist_ok=True)
    cpp_extension.load(
        name=NAME,
        sources=[os.path.join(_HERE, "csrc", "ops.cpp")],
        extra_include_paths=[header_dir(lib)],
        extra_cflags=["-O2"],
        # The library's full path (the same file ctypes loaded) and its folder as
        # the run path: one copy of libnormjit in the process.
        extra_ldflags=[lib, "-Wl,-rpath," + os.path.dirname(lib)],
        build_directory=build_dir,
        is_python_module=False,
        verbose=verbose)
