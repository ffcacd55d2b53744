"""App-loading test app built by a factory: `--module 'load_factory:create_app()'`."""

from wsgiref.validate import validator

FACTORY_CALLS = []


def create_app():
    FACTORY_CALLS.append(1)

    def app(environ, start_response):
        body = f"made by create_app, factory calls={len(FACTORY_CALLS)}\n".encode("ascii")
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return validator(app)
