from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from perceptlab import serving

urlpatterns = [
    path("admin/", admin.site.urls),
    # Stored files (MEDIA_URL) for staff in every mode: the admin's crop and gold previews.
    # Raters get their images from /r/<code>/img/<token> only.
    path("media/<path:name>", serving.media, name="media"),
    path("", include("perceptlab.health")),  # GET /healthz: the load benchmark's baseline
    path("", include("perceptlab.studies.urls")),
    path("", include("perceptlab.evaluation.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
