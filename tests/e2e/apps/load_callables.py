"""App-loading test app with two callables: `application` and `alt_app`."""

from wsgiref.validate import validator


def _answer(name):
    def app(environ, start_response):
        body = f"callable={name}\n".encode("ascii")
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return validator(app)


application = _answer("application")
alt_app = _answer("alt_app")
