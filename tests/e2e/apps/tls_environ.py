"""Answers with the TLS-related keys of its environ, one `KEY=value` a line,
and the length of the request body it read (`BODY_LEN`)."""

KEYS = (
    "wsgi.url_scheme",
    "HTTPS",
    "HTTPS_DN",
    "SSL_CLIENT_S_DN",
    "SSL_CLIENT_VERIFY",
    "SSL_PROTOCOL",
)


def application(environ, start_response):
    read = len(environ["wsgi.input"].read())
    body = "".join(f"{k}={environ.get(k, '')}\n" for k in KEYS).encode()
    body += f"BODY_LEN={read}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
