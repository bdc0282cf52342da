from __future__ import annotations

from django.urls import path

from perceptlab.evaluation import views

app_name = "evaluation"

urlpatterns = [
    path("reports/<int:study_id>/", views.report, name="report"),
    path("reports/<int:study_id>/<str:name>", views.export, name="export"),
    path("reports/plotly.min.js", views.plotly_js, name="plotly_js"),
]
