#!/usr/bin/python
import web

urls = ("/.*", "hello")
app = web.application(urls, globals())

class hello:
    def GET(self):
        return 'Welcome to webpy!'

# 这行代码非常重要
application = app.wsgifunc()
