"""Test app for tests/e2e/test_process_model.py: importing it raises. With
--lazy-apps every worker fails to load the app (exit 22): a crash loop."""

raise RuntimeError("this app never loads")


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
