"""App-loading test app that opens a file by a path relative to the working directory."""

import os
from wsgiref.validate import validator

with open("load_chdir_data.txt", "rb") as f:
    DATA_AT_IMPORT = f.read()


def app(environ, start_response):
    with open("load_chdir_data.txt", "rb") as f:
        data_now = f.read()
    body = b"import: " + DATA_AT_IMPORT + b"request: " + data_now + b"cwd: " + os.getcwd().encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


application = validator(app)
