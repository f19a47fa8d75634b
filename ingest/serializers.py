"""The upload API's fields and answer, with every limit stated once.

``UploadMetadataSerializer`` validates an upload's fields (form fields or
query parameters, and the ``ingest`` command's options) and documents them
in the OpenAPI schema; ``read_metadata`` turns its errors into one sentence.
No logic beyond the shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from flakewatch.models import Upload
from ingest.services import InvalidUpload, UploadMetadata

MAX_ATTEMPT = 10_000
NOT_BLANK_NO_NUL = r"^[^\x00]*\S[^\x00]*$"


def _text(name: str, limit: int, help_text: str) -> serializers.CharField:
    return serializers.CharField(
        max_length=limit,
        # Something besides whitespace (blank values count as missing) and no
        # NUL (PostgreSQL text cannot hold one): the schema says so too.
        validators=[RegexValidator(NOT_BLANK_NO_NUL, f"{name} must not be blank.")],
        help_text=help_text,
        error_messages={"max_length": f"{name} is longer than {limit} characters."},
    )


class WholeNumberField(serializers.IntegerField):
    """An integer as ``int()`` reads it: "2.0" is not a re-run counter."""

    re_decimal = re.compile(r"(?!)")  # DRF's would strip a ".0"


class UploadMetadataSerializer(serializers.Serializer[dict[str, object]]):
    """The fields of one CI job's upload (whitespace around them is ignored)."""

    commit = _text("commit", 64, "The commit the tests ran on.")
    branch = _text("branch", 255, "The branch of that commit.")
    build = _text("build", 255, "The CI build (pipeline) id.")
    job = _text("job", 255, "The CI job's name within the build.")
    attempt = WholeNumberField(
        required=False,
        default=1,
        min_value=1,
        max_value=MAX_ATTEMPT,
        help_text="The CI re-run counter of the job.",
        error_messages={
            code: "attempt must be a whole number from 1 (the CI job's re-run counter)."
            for code in ("invalid", "min_value", "max_value", "max_string_length")
        },
    )
    build_url = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=1000,
        validators=[
            RegexValidator(
                r"^https?://",
                "build_url must be an http(s) URL of at most 1000 characters.",
            )
        ],
        help_text="A link to the CI job.",
        error_messages={
            "max_length": "build_url must be an http(s) URL of at most 1000 characters."
        },
    )
    started_at = serializers.DateTimeField(
        required=False,
        default=None,
        help_text="When the CI job started (ISO 8601; UTC unless it says).",
        error_messages={
            "invalid": "started_at must be an ISO 8601 time, e.g. 2026-05-01T10:00:00Z."
        },
    )


class UploadQuerySerializer(UploadMetadataSerializer):
    """The same fields as query parameters, read only with a raw body."""

    # DRF declares get_fields with an unparameterised Field: any field goes.
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        """Return the metadata fields, none of them required."""
        fields = super().get_fields()
        for field in fields.values():
            field.required = False  # a multipart upload sends them in the form
        return fields


# A file part, not a URL to one; Django drops an empty part, so it is no report.
@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class ReportFileField(serializers.FileField):
    """A report file part of a multipart upload."""


class UploadFormSerializer(UploadMetadataSerializer):
    """A multipart upload: the fields and one or more report files."""

    file = serializers.ListField(
        child=ReportFileField(),
        min_length=1,
        help_text="JUnit XML reports, plain or .gz.",
    )


class UploadSerializer(serializers.Serializer[Upload]):
    """An upload's status and counts, as the API answers them."""

    id = serializers.CharField(source="pk")
    status = serializers.ChoiceField(choices=Upload.Status.values)
    status_url = serializers.SerializerMethodField(
        help_text="The path to read this upload's status at."
    )
    tests = serializers.IntegerField(
        source="tests_count", help_text="Testcases ingested."
    )
    failures = serializers.IntegerField(
        source="failures_count", help_text="Final outcome failed or error."
    )
    # A declared field, not an attribute: DRF's metaclass takes it out of the
    # class, so Serializer.errors stays as it is; the stubs cannot tell.
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.CharField(),
        help_text="Problems with single testcases, or why a file was unreadable.",
    )
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="Repairs made while reading."
    )
    analyzed = serializers.SerializerMethodField(
        help_text=(
            "Whether the verdicts include this upload (its analysis committed); "
            "a CI gate reading verdicts waits for true."
        )
    )

    def get_analyzed(self, upload: Upload) -> bool:
        """Tell whether the upload's analysis has committed."""
        return upload.analyzed_at is not None

    def get_status_url(self, upload: Upload) -> str:
        """Return the path of this upload's status."""
        return f"/api/v1/uploads/{upload.pk}"


def read_metadata(fields: Mapping[str, Any]) -> UploadMetadata:
    """Validate upload fields (a QueryDict or dict of str) into metadata.

    Raises ``InvalidUpload`` naming every missing field, or else the first
    malformed one.
    """
    # keys(): the stubs type iterating the fields' BindingDict as its Fields.
    names = UploadMetadataSerializer().fields.keys()
    values = {}
    for name in names:
        value = fields.get(name)
        if isinstance(value, str) and value.strip():
            values[name] = value.strip()
    serializer = UploadMetadataSerializer(data=values)
    if serializer.is_valid():
        data = serializer.validated_data
        return UploadMetadata(
            commit_sha=data["commit"],
            branch=data["branch"],
            build=data["build"],
            job=data["job"],
            attempt=data["attempt"],
            build_url=data["build_url"],
            started_at=data["started_at"],
        )
    errors = serializer.errors
    missing = [name for name in names if name in errors and name not in values]
    if missing:
        raise InvalidUpload(
            f"Missing {', '.join(missing)}: send commit, branch, build and job as form "
            "fields (-F commit=...) or query parameters (?commit=...)."
        )
    name = next(name for name in names if name in errors)
    message = str(errors[name][0])
    raise InvalidUpload(message if message.startswith(name) else f"{name}: {message}")
