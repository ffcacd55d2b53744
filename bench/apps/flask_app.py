"""Flask JSON route for bench/: the same file for every server.

GET /json returns {"message": "Hello, World!"} via jsonify (the classic
TechEmpower "JSON" test). Exposed as `app` and as `application` (the
default callable name of uWSGI and Portico's --wsgi-file).
"""

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/json")
def json_route():
    return jsonify(message="Hello, World!")


application = app
