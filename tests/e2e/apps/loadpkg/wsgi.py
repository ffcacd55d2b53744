"""WSGI module inside a package: `--module loadpkg.wsgi` and `--module loadpkg.wsgi:app`."""

from wsgiref.validate import validator


def _app(environ, start_response):
    body = f"loadpkg.wsgi as {__name__}\n".encode("ascii")
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


application = validator(_app)
app = application
