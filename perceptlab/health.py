"""A bare JSON view: the baseline ``bench/load.py`` measures the rater API against.

It goes through the whole middleware stack but touches neither the database nor a
template, so its throughput is the web stack's own ceiling on the machine at hand.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_safe


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """``{"ok": true}``: the server process is up and answering."""
    return JsonResponse({"ok": True})


urlpatterns = [path("healthz", healthz, name="healthz")]
