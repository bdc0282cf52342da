"""Rater-facing URLs; everything after the invitation hangs off the session's code."""

from __future__ import annotations

from django.urls import path

from perceptlab.studies import views

app_name = "studies"

urlpatterns = [
    path("study/<uuid:invite>/", views.join, name="join"),
    path("r/<uuid:code>/", views.session_page, name="session"),
    path("r/<uuid:code>/state", views.state, name="state"),
    path("r/<uuid:code>/judge", views.judge, name="judge"),
    path("r/<uuid:code>/img/<str:token>", views.stimulus, name="stimulus"),
    path("r/<uuid:code>/imgs/<str:tokens>", views.stimuli, name="stimuli"),
]
