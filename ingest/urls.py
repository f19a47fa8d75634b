from django.urls import path

from ingest import api

urlpatterns = [
    path("uploads", api.uploads, name="uploads"),
    path("uploads/<int:upload_id>", api.upload_status, name="upload-status"),
]
