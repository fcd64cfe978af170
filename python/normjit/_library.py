"""Where the binding finds libnormjit and the normjit tool.

In order: $NORMJIT_LIBRARY; the copy pip installed inside this package; a
build folder of the source checkout this package sits in (build*/src); the
system's library path (an installed `meson install`).
"""
import glob
import os
import shutil

# ctypes.util and sysconfig (1-2 ms to import where torch has not) are imported
# where used: neither is on the way to a first call in a pip installation.

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# python/normjit/ -> the checkout's root, where build folders are.
_CHECKOUT_ROOT = os.path.dirname(os.path.dirname(_PACKAGE_DIR))


def _in_build_folder(relative):
    """The first match of build*/relative in the source checkout, or None."""
    found = sorted(glob.glob(os.path.join(_CHECKOUT_ROOT, "build*", relative)))
    return found[0] if found else None


def library_path():
    """The path (or soname) of the libnormjit to load."""
    env = os.environ.get("NORMJIT_LIBRARY")
    if env:
        return env
    # The soname link where it exists, else the versioned file itself.
    installed = sorted(glob.glob(os.path.join(_PACKAGE_DIR, "libnormjit.so.*")), key=len)
    if installed:
        return installed[0]
    built = _in_build_folder(os.path.join("src", "libnormjit.so.*"))
    if built:
        return built
    import ctypes.util
    return ctypes.util.find_library("normjit") or "libnormjit.so.0"


def tool_path():
    """The path of the `normjit` command to run, or None when there is none.

    The scripts folder of the installation this package belongs to (a
    virtual environment's bin/, or the user scheme's for `pip install
    --user`), then a build folder of the source checkout, then $PATH.
    """
    import sysconfig
    for scheme in sysconfig.get_scheme_names():
        paths = sysconfig.get_paths(scheme)
        if _PACKAGE_DIR.startswith(tuple(os.path.join(paths[k], "") for k in ("platlib", "purelib"))):
            candidate = os.path.join(paths["scripts"], "normjit")
            if os.access(candidate, os.X_OK):
                return candidate
    built = _in_build_folder(os.path.join("tools", "normjit"))
    return built or shutil.which("normjit")
