"""Answers with the TLS-related keys of its environ, one `KEY=value` a line."""

KEYS = (
    "wsgi.url_scheme",
    "HTTPS",
    "HTTPS_DN",
    "SSL_CLIENT_S_DN",
    "SSL_CLIENT_VERIFY",
    "SSL_PROTOCOL",
)


def application(environ, start_response):
    body = "".join(f"{k}={environ.get(k, '')}\n" for k in KEYS).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
