"""Core tables: projects, tokens, uploads (CI runs), tests and their executions.

Scale notes. ``CaseResult`` is the only table that grows with every test run,
to hundreds of millions of rows, so it is kept narrow (about 44 bytes of heap
a passing row, plus its primary-key index) and carries no surrogate id, no
timestamps and no foreign-key constraints: the run's commit, branch, job and
time live once on its ``Upload``; its writer inserts an upload's rows in one
transaction with the upload's DONE mark, which is what keeps it consistent.

Partitioning and pruning: upload ids grow with time, and ``upload_id`` is part
of the primary key, so the table partitions by RANGE (upload_id), one
partition per few million uploads; retention drops the oldest partitions
(cheap, no vacuum) once the per-day rollups cover them. A BRIN index on
``upload_id`` (a few pages for millions of rows) serves "the results of one
upload" without a second B-tree.
"""

from django.db import models
from django.db.models import CompositePrimaryKey

from flakewatch.outcomes import Outcome

OUTCOME_CHOICES = [(o.value, o.name.lower()) for o in Outcome]


class RealField(models.FloatField):
    """A 4-byte float: 7 significant digits is ample for a test's duration."""

    def db_type(self, connection):
        return (
            "real" if connection.vendor == "postgresql" else super().db_type(connection)
        )


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    default_branch = models.CharField(max_length=255, default="main")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug


class ApiToken(models.Model):
    class Scope(models.TextChoices):
        UPLOAD = "upload", "upload"
        READ = "read", "read"

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="tokens"
    )
    scope = models.CharField(max_length=10, choices=Scope.choices)
    # The first characters of the token, shown in admin so a leaked or stale
    # token can be told apart without storing it.
    prefix = models.CharField(max_length=16)
    # sha256 of the whole token: tokens are 256-bit random, so a fast hash is
    # as good as a slow one against guessing, and lookups stay one index probe.
    token_hash = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.scope})"


class Upload(models.Model):
    """One CI job's report upload: the run every stored result belongs to."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        PROCESSING = "processing", "processing"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="uploads"
    )
    commit_sha = models.CharField(max_length=64)
    branch = models.CharField(max_length=255)
    build = models.CharField(max_length=255)
    job = models.CharField(max_length=255)
    attempt = models.PositiveIntegerField(default=1)
    build_url = models.URLField(max_length=1000, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    # sha256 over (build, job, attempt, sorted file content hashes): the same
    # reports from the same job attempt are one upload, however often posted.
    idempotency_key = models.CharField(max_length=64)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.QUEUED
    )
    status_changed_at = models.DateTimeField(auto_now_add=True)
    process_attempts = models.PositiveSmallIntegerField(default=0)
    tests_count = models.PositiveIntegerField(default=0)
    failures_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "idempotency_key"], name="upload_idempotency_uniq"
            ),
        ]
        indexes = [
            # A commit's runs (analytics: same-commit pass/fail evidence).
            models.Index(
                fields=["project", "commit_sha"], name="upload_project_commit_idx"
            ),
            # Branch history in time order (analytics: default-branch sequence).
            models.Index(
                fields=["project", "branch", "received_at"],
                name="upload_branch_time_idx",
            ),
            # ingest.services.requeue_stale_uploads scans only unfinished uploads.
            models.Index(
                fields=["status_changed_at"],
                name="upload_unfinished_idx",
                condition=models.Q(status__in=["queued", "processing"]),
            ),
        ]

    def __str__(self) -> str:
        return f"upload {self.pk} {self.job}@{self.commit_sha[:12]}"


class UploadFile(models.Model):
    """One report file of an upload, kept gzip-compressed as received."""

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(max_length=500)
    content_sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    payload_gz = models.BinaryField()

    def __str__(self) -> str:
        return self.filename


class Case(models.Model):
    """A test's stable identity within a project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="cases")
    # blake2b-128 over the NUL-joined (suite, classname, name, file): a fixed
    # width key for the unique index however long the names are.
    identity_hash = models.BinaryField(max_length=16)
    suite = models.TextField(blank=True)
    classname = models.TextField(blank=True)
    name = models.TextField()
    file = models.TextField(blank=True)
    first_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "identity_hash"], name="case_identity_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.classname}::{self.name}" if self.classname else self.name


class FailureMessage(models.Model):
    """A distinct failure, error or skip text, stored once per project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE)
    digest = models.BinaryField(max_length=16)
    kind = models.CharField(max_length=200, blank=True)  # the reported type attribute
    message = models.TextField(blank=True)
    detail = models.TextField(blank=True)  # body text, truncated

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "digest"], name="message_digest_uniq"
            ),
        ]

    def __str__(self) -> str:
        return self.message[:80] or self.kind


class CaseResult(models.Model):
    """One execution of a test: ``retry_index`` counts runs within one upload."""

    # Primary key order serves the analytics read "a test's history":
    # (case_id, upload_id) is an index range scan in upload (time) order.
    pk = CompositePrimaryKey("case", "upload", "retry_index")
    case = models.ForeignKey(
        Case, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False
    )
    upload = models.ForeignKey(
        Upload, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False
    )
    retry_index = models.SmallIntegerField()
    outcome = models.SmallIntegerField(choices=OUTCOME_CHOICES)
    duration_ms = RealField(null=True)  # null when the report gave no usable time
    message = models.ForeignKey(
        FailureMessage,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
    )

    # No other B-tree: migration 0002 adds a BRIN index on upload_id (Postgres).

    def __str__(self) -> str:
        return f"case {self.case_id} upload {self.upload_id} #{self.retry_index}"
