"""python -m normjit ARGS: the `normjit` command, with the same arguments and exit status."""
import os
import sys

from ._library import tool_path


def main():
    tool = tool_path()
    if tool is None:
        sys.stderr.write("normjit: the normjit command is not installed next to this package "
                         "nor on PATH (pip install normjit installs it)\n")
        return 1
    os.execv(tool, [tool] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
