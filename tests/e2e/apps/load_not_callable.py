"""App-loading test app whose `application` is not callable."""

application = "this string is not a WSGI callable"
