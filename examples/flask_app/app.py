"""A small Flask application.

    portico --http :8000 --virtualenv target/examples-venv --wsgi-file examples/flask_app/app.py
"""

from flask import Flask, jsonify, request, url_for

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello from Flask!\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.route("/json")
def json_view():
    return jsonify(message="Hello from Flask", method=request.method, path=request.path)


@app.route("/echo", methods=["POST"])
def echo():
    return request.get_data(), 200, {
        "Content-Type": request.content_type or "application/octet-stream"
    }


@app.route("/hello/<name>")
def hello(name):
    # url_for builds the URL from the request's SCRIPT_NAME and the route,
    # so it shows whether the server gives Flask a correct environ.
    return jsonify(greeting=f"Hello, {name}!", url=url_for("hello", name=name))


# uWSGI (and Portico) look for `application` by default.
application = app
