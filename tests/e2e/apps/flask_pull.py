"""Flask app for tests/e2e/test_wsgi_pull.py (run with the examples venv).

Every response's close callbacks (Werkzeug's ClosingIterator calls them)
append "close TAG" to $PULL_LOG; the tag comes from ?tag=.

/json     jsonify, as bench/apps/flask_app.py
/stream   a streamed Response: b"first\\n", 1 s, b"second\\n"
/ctx      stream_with_context: the request is still there while streaming
/fail     the view raises (Flask answers 500 itself)
"""

import os
import time

from flask import Flask, Response, jsonify, request, stream_with_context

LOG = os.environ["PULL_LOG"]

app = Flask(__name__)


def record(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")


@app.after_request
def close_callback(response):
    tag = request.args.get("tag")
    if tag:
        response.call_on_close(lambda: record(f"close {tag}"))
    return response


@app.route("/json")
def json_route():
    return jsonify(message="Hello, World!")


@app.route("/stream")
def stream():
    def generate():
        yield b"first\n"
        time.sleep(1.0)
        yield b"second\n"

    return Response(generate(), mimetype="text/plain")


@app.route("/ctx")
def ctx():
    def generate():
        yield b"path="
        yield request.path.encode()

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.route("/fail")
def fail():
    raise RuntimeError("flask-view-raised-marker")


application = app
