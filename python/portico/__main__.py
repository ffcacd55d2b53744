"""`python -m portico ARGS`: exec the `portico` binary that the wheel
installed into this environment's scripts directory, with the same ARGS."""

import os
import sys
import sysconfig


def binary():
    """The installed `portico` command: this environment's scripts directory
    (the venv's bin/), or the user scheme's when installed with --user."""
    candidates = [sysconfig.get_path("scripts")]
    try:
        candidates.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    except KeyError:
        pass
    for directory in candidates:
        path = os.path.join(directory, "portico")
        if os.access(path, os.X_OK):
            return path
    sys.exit("portico: the `portico` command is not installed beside this Python")


def main():
    path = binary()
    os.execv(path, [path] + sys.argv[1:])


if __name__ == "__main__":
    main()
