"""Portico's app loader, run inside the embedded interpreter.

Loads a WSGI callable the way uWSGI does: from a file (``--wsgi-file``,
imported as module ``uwsgi_file_<mangled path>``) or a module
(``--module pkg.mod``, ``pkg.mod:name``, ``pkg.mod:factory()``).
"""

import importlib
import importlib.util
import os
import sys


def _prepend_path(path):
    if path not in sys.path:
        sys.path.insert(0, path)


def prepare(pythonpath):
    """Put the working directory, then each --pythonpath entry, first on sys.path."""
    _prepend_path(os.getcwd())
    for entry in reversed(pythonpath):
        _prepend_path(os.path.abspath(entry))


def _mangle(path):
    return "".join(c if c.isalnum() else "_" for c in path)


def load_file(path, callable_name):
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = "uwsgi_file_" + _mangle(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return _take(module, callable_name, path)


def load_module(target, callable_name):
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return _take(module, attr or callable_name, module_name)


def _take(module, attr, where):
    factory = attr.endswith("()")
    name = attr[:-2] if factory else attr
    try:
        app = getattr(module, name)
    except AttributeError:
        raise AttributeError(f"{where} has no callable named {name!r}") from None
    if factory:
        app = app()
    if not callable(app):
        raise TypeError(f"{where}: {attr!r} is a {type(app).__name__}, not a WSGI callable")
    return app
