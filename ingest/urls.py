"""The upload API's URLs: send an upload, read its status."""

from django.urls import path

from ingest import api, gate_api

urlpatterns = [
    path("uploads", api.UploadsView.as_view(), name="uploads"),
    path(
        "uploads/<int:upload_id>", api.UploadStatusView.as_view(), name="upload-status"
    ),
    path("projects/<slug:slug>/gate", gate_api.GateView.as_view(), name="gate"),
]
