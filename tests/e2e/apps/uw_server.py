"""The seeds' mounted `server.py` (tests/e2e/test_uwsgi.py, test_nginx.py).

Reports which callable ran, SCRIPT_NAME, PATH_INFO and the URLs that
wsgiref builds from them, as JSON. `application` is the mounted app;
`admin` and `trail` are the same report under another name (for mounts of
module:callable).
"""

import json
from wsgiref.util import application_uri, request_uri


def _report(name):
    def app(environ, start_response):
        body = json.dumps({
            "app": name,
            "script_name": environ.get("SCRIPT_NAME"),
            "path_info": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING"),
            "application_uri": application_uri(environ),
            "request_uri": request_uri(environ),
        }).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return app


application = _report("server")
admin = _report("admin")
trail = _report("trail")
