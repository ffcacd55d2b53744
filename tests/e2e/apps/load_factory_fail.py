"""App-loading test app whose factory raises: the server must refuse to start."""


def create_app():
    raise RuntimeError("load_factory_fail: the factory refused to build the app")
