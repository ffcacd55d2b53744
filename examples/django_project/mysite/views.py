"""Views of the example project."""

from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("Hello from Django!\n", content_type="text/plain; charset=utf-8")


def hello(request, name):
    # reverse() prefixes the URL with the request's SCRIPT_NAME, so this view
    # shows whether the server mounts the app where it says it does.
    return JsonResponse({"greeting": f"Hello, {name}!", "url": reverse("hello", args=[name])})


@csrf_exempt
def echo(request):
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    return HttpResponse(
        request.body, content_type=request.content_type or "application/octet-stream"
    )
