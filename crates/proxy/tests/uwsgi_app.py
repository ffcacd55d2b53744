"""A WSGI app for the real-uWSGI interop test (tests/real_uwsgi.rs)."""


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Method", environ["REQUEST_METHOD"])])
        return [b"got:" + body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (("piece%d;" % i).encode() for i in range(5))
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return [b"nope"]
    if path == "/crash":
        raise RuntimeError("boom before start_response")
    start_response("500 Internal Server Error", [])
    return [b""]
