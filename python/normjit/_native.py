"""Build and load the native kernels of the torch ops (csrc/ops.cpp).

The extension is compiled against the installed torch with
torch.utils.cpp_extension.load on first use and cached: under
$NORMJIT_TORCH_EXT_DIR if set, else torch's extension folder
($TORCH_EXTENSIONS_DIR or its default). It is linked to the libnormjit this
process loaded, so both share one library and its contexts.

Importing torch.utils.cpp_extension costs about a third of a second (it
imports setuptools) and its load runs ninja even when nothing changed. So a
build leaves a stamp beside the extension: a digest of everything that went
into it. A later process whose inputs give the same digest loads the built
file directly, as cpp_extension.load ends by doing (torch.ops.load_library);
any difference, or a failure to load, takes the cpp_extension path.
"""
import hashlib
import json
import os
import sys

from . import _binding

NAME = "normjit_torch_ops"
_HERE = os.path.dirname(os.path.abspath(__file__))
_STAMP = NAME + ".stamp"


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


def _build_arguments():
    """cpp_extension.load's arguments for this process's libnormjit."""
    lib = _binding.loaded_library_path()
    return dict(
        name=NAME,
        sources=[os.path.join(_HERE, "csrc", "ops.cpp")],
        extra_include_paths=[header_dir(lib)],
        extra_cflags=["-O2"],
        # The library's full path (the same file ctypes loaded) and its folder as
        # the run path: one copy of libnormjit in the process.
        extra_ldflags=[lib, "-Wl,-rpath," + os.path.dirname(lib)])


def build_directory():
    """Where the extension is built: $NORMJIT_TORCH_EXT_DIR/NAME, else the folder
    torch.utils.cpp_extension picks (its _get_build_directory, which this follows
    without importing that module; test_torch_cpu.py checks that the two agree)."""
    root = os.environ.get("NORMJIT_TORCH_EXT_DIR")
    if root:
        return os.path.join(root, NAME)
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is None:
        import torch
        from torch import _appdirs
        if torch.version.hip is not None:
            accelerator = "rocm" + torch.version.hip.replace(".", "")
        elif torch.version.cuda is not None:
            accelerator = "cu" + torch.version.cuda.replace(".", "")
        else:
            accelerator = "cpu"
        python = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
        root = os.path.join(os.path.realpath(_appdirs.user_cache_dir(appname="torch_extensions")),
                            f"{python}_{accelerator}")
    return os.path.join(root, NAME)


def _digest(args):
    """A digest of what the built extension depends on: its source and normjit.h, the
    build arguments, the torch and Python it was built for, the compiler asked for."""
    import torch
    h = hashlib.sha256()
    h.update(json.dumps([args, torch.__version__, torch.version.git_version, torch.version.cuda,
                         torch.version.hip, sys.version, getattr(sys, "abiflags", ""),
                         os.environ.get("CXX")]).encode())
    for path in args["sources"] + [os.path.join(args["extra_include_paths"][0], "normjit.h")]:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def _stamped_library(folder, digest):
    """The extension built in `folder` from inputs with this digest, or None."""
    try:
        with open(os.path.join(folder, _STAMP)) as f:
            stamp = json.load(f)
        st = os.stat(stamp["library"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if stamp.get("digest") != digest or [st.st_size, st.st_mtime_ns] != stamp.get("file") \
            or os.path.dirname(stamp["library"]) != os.path.realpath(folder):
        return None  # another build's, or a file outside the build folder
    return stamp["library"]


def _write_stamp(library, digest):
    """Record the extension just built (write, then rename: readers see all or nothing)."""
    path = os.path.join(os.path.dirname(library), _STAMP)
    st = os.stat(library)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump({"digest": digest, "library": library,
                       "file": [st.st_size, st.st_mtime_ns]}, f)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def load(verbose=False):
    """Compile (if needed) and load the extension, which registers the CUDA and
    Autograd kernels of the ops defined in ops.py. Raises on any failure."""
    import torch

    args = _build_arguments()
    folder = build_directory()
    digest = _digest(args)
    library = None if verbose else _stamped_library(folder, digest)
    if library is not None:
        try:
            torch.ops.load_library(library)
            return
        except OSError:
            pass
    try:  # a build is coming: no process may trust the old stamp meanwhile
        os.unlink(os.path.join(folder, _STAMP))
    except OSError:
        pass
    from torch.utils import cpp_extension

    explicit = os.environ.get("NORMJIT_TORCH_EXT_DIR")
    if explicit:
        os.makedirs(folder, exist_ok=True)
    library = cpp_extension.load(**args, build_directory=folder if explicit else None,
                                 is_python_module=False, verbose=verbose)
    _write_stamp(os.path.realpath(library), digest)
