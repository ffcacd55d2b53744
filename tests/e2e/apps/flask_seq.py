"""Flask twin of busy_seq.py for tests/e2e/test_new_conn_under_load.py (run
with the examples venv): every answer is "PID SEQ" (the worker's pid and its
own request count, this one included), made by a Flask view, so the body
is Werkzeug's iterator, pulled by the connection (crates/wsgi/src/pull.rs).

/busy   about 1 ms of CPU in the view
/quick  no work
"""

import os
import time

from flask import Flask

app = Flask(__name__)
SEQ = 0


def answer():
    global SEQ
    SEQ += 1
    return f"{os.getpid()} {SEQ}", 200, {"Content-Type": "text/plain"}


@app.route("/busy")
def busy():
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass
    return answer()


@app.route("/quick")
def quick():
    return answer()


application = app
