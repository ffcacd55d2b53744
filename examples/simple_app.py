def simple_app(environ, start_response):
    status = '200 OK'
    response_headers = [('Content-type','text/plain')]
    start_response(status, response_headers)
    return ['Hello world!\n']

application = simple_app # 若web应用部署在uWSGI容器中，需要这行代码
