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
(cheap, no vacuum) once the per-day rollups cover them. A deduplicated
B-tree on ``upload_id`` (about 6 bytes a row) serves "the results of one
upload"; BRIN would be smaller but is exact only where vacuum has summarised
it (migration 0002).
"""

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CompositePrimaryKey
from django.db.models.functions import Coalesce

from flakewatch.outcomes import Outcome, Status

OUTCOME_CHOICES = [(o.value, o.name.lower()) for o in Outcome]
VERDICT_CHOICES = [(s.value, s.value) for s in Status]


class RealField(models.FloatField[float | None, float | None]):
    """A 4-byte float: 7 significant digits is ample for a test's duration."""

    def db_type(self, connection: BaseDatabaseWrapper) -> str | None:
        """Return "real" on PostgreSQL, else the float type of the database."""
        return (
            "real" if connection.vendor == "postgresql" else super().db_type(connection)
        )


class Project(models.Model):
    """A code base whose CI sends test reports; the unit of every query."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    default_branch = models.CharField(max_length=255, default="main")
    created_at = models.DateTimeField(auto_now_add=True)
    # The CI gate (flakewatch/gate.py): fail a run whose quarantined test
    # fails with a failure signature never seen in its history.
    gate_fails_on_new_signature = models.BooleanField(default=False)
    # Bumped in the transaction of every change to the quarantine list, so
    # the list's ETag changes exactly when the list does.
    quarantine_version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return self.slug


class ApiToken(models.Model):
    """A project's bearer token for the upload or the read API."""

    class Scope(models.TextChoices):
        UPLOAD = "upload", "upload"
        READ = "read", "read"
        # Quarantine actions (flakewatch/quarantine.py): accept, dismiss, ...
        MANAGE = "manage", "manage"

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
    # When the tests ran: the CI's start time, else arrival. The run order
    # of every analysis; computed by the database from the row as it is
    # stored (so every writer, COPY included, gets it right), never null.
    run_at = models.GeneratedField(
        expression=Coalesce("started_at", "received_at"),
        output_field=models.DateTimeField(),
        db_persist=True,
    )
    # sha256 over (build, job, attempt, sorted file content hashes): the same
    # reports from the same job attempt are one upload, however often posted.
    idempotency_key = models.CharField(max_length=64)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.QUEUED
    )
    status_changed_at = models.DateTimeField(auto_now_add=True)
    process_attempts = models.PositiveSmallIntegerField(default=0)
    # Its last task could not be sent (the broker was down): the next sweep
    # re-sends it at once instead of after FLAKEWATCH_REQUEUE_AFTER_SECONDS.
    dispatch_failed = models.BooleanField(default=False)
    tests_count = models.PositiveIntegerField(default=0)
    failures_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Sum of the upload's test durations, and whether it is a CI re-run whose
    # previous attempt failed only on flaky tests: "time lost to flakiness".
    duration_total_ms = models.FloatField(default=0)
    reran_for_flakes = models.BooleanField(default=False)
    # Set in the transaction that adds the upload to the analytics: once only.
    analyzed_at = models.DateTimeField(null=True, blank=True)
    # When retention deleted its executions (flakewatch/retention.py); its
    # contribution to rollups, states and evidence stays.
    results_pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "idempotency_key"], name="upload_idempotency_uniq"
            ),
        ]
        indexes = [
            # A commit's runs: evidence._earlier_passes (same-commit passes),
            # and queries.project_summary finds a project's uploads by it.
            models.Index(
                fields=["project", "commit_sha"], name="upload_project_commit_idx"
            ),
            # A job's default-branch runs in run order: evidence.job_positions
            # (the window's range, and the last run before it per job).
            models.Index(
                fields=["project", "branch", "job", "run_at"],
                name="upload_run_order_idx",
            ),
            # A build's earlier attempts of a job: evidence.update_upload_totals.
            models.Index(
                fields=["project", "build", "job", "attempt"],
                name="upload_build_job_idx",
            ),
            # ingest.services.requeue_stale_uploads scans only unfinished uploads.
            models.Index(
                fields=["status_changed_at"],
                name="upload_unfinished_idx",
                condition=models.Q(status__in=["queued", "processing"]),
            ),
            # ...and done uploads still waiting for the analytics.
            models.Index(
                fields=["status_changed_at"],
                name="upload_unanalyzed_idx",
                condition=models.Q(status="done", analyzed_at__isnull=True),
            ),
            # The same uploads in run order: analysis._waiting_batch.
            models.Index(
                fields=["project", "run_at", "id"],
                name="upload_waiting_idx",
                condition=models.Q(status="done", analyzed_at__isnull=True),
            ),
            # Uploads whose executions retention has yet to prune, in run
            # order: retention._prunable_uploads. Holds the retention period.
            models.Index(
                fields=["run_at"],
                name="upload_unpruned_idx",
                condition=models.Q(status="done", results_pruned_at__isnull=True),
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


class Team(models.Model):
    """A group of people who own tests, across every project.

    Teams are shared by all projects: a company's payments team owns code in
    several repositories (projects) and reads one weekly digest about all of
    it. Which tests a team owns is per project (each repository has its own
    CODEOWNERS), so ownership rules belong to a project and name a team.
    """

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    # The addresses that receive the team's weekly digest.
    emails = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug


class Layer(models.TextChoices):
    """Where a test sits in the test pyramid (flakewatch/layers.py)."""

    UNIT = "unit", "unit"
    INTEGRATION = "integration", "integration"
    E2E = "e2e", "e2e"
    UNKNOWN = "unknown", "unknown"


class Case(models.Model):
    """A test's stable identity within a project."""

    # No database constraint: checking it costs 6 µs for each new test at
    # commit (0.6 s for a 100,000-test suite's first upload), and rows are
    # only ever written with the project of an upload the writer has locked.
    # Django still cascades a project's deletion. case_identity_uniq, whose
    # leading column is project_id, serves the lookups by project.
    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="cases",
        db_constraint=False,
        db_index=False,
    )
    # blake2b-128 over the NUL-joined (suite, classname, name, file): a fixed
    # width key for the unique index however long the names are.
    identity_hash = models.BinaryField(max_length=16)
    suite = models.TextField(blank=True)
    classname = models.TextField(blank=True)
    name = models.TextField()
    file = models.TextField(blank=True)
    first_seen_at = models.DateTimeField()
    # Set from the project's ownership and layer rules when the test is first
    # stored, and by a set-based update whenever the rules change.
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="cases"
    )
    # A database default: the write path inserts new tests with raw SQL.
    layer = models.CharField(
        max_length=12, choices=Layer.choices, db_default=Layer.UNKNOWN
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "identity_hash"], name="case_identity_uniq"
            ),
        ]
        indexes = [
            # queries.case_list(team=...) and team=none (team_id IS NULL).
            models.Index(fields=["project", "team"], name="case_team_idx"),
            # queries.case_list(layer=...).
            models.Index(fields=["project", "layer"], name="case_layer_idx"),
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
    # The message with numbers, ids, addresses, paths and times masked
    # (flakewatch.analytics.signatures): failures that differ only there group.
    signature = models.TextField(blank=True)

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

    # The key Django knows. On PostgreSQL no constraint backs it (migration
    # 0002): the writer guarantees it, storing an upload's rows once with its
    # DONE mark, and a unique B-tree would cost 40 bytes a row at the fill
    # random inserts leave. "A test's history" uses a plain index on case_id
    # instead, whose deduplicated posting lists cost about 6 bytes a row.
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

    # Migration 0002 adds, on PostgreSQL, the B-trees on case_id and
    # on upload_id.

    def __str__(self) -> str:
        return f"case {self.case_id} upload {self.upload_id} #{self.retry_index}"


class DailyCaseStat(models.Model):
    """Per test per day (UTC, by upload time): runs, failures and time spent.

    Additive, so an upload's contribution is added once in the transaction
    that stores it, and ``recompute`` rebuilds the same rows from raw results.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, db_index=False)
    day = models.DateField()
    runs = models.PositiveIntegerField(default=0)  # uploads the test ran in
    failures = models.PositiveIntegerField(default=0)  # first attempt failed
    skipped = models.PositiveIntegerField(default=0)
    duration_total_ms = models.FloatField(default=0)

    class Meta:
        constraints = [
            # Also the conflict target of daily_stats.save_daily_stats.
            models.UniqueConstraint(fields=["case", "day"], name="dailycasestat_uniq"),
        ]

    def __str__(self) -> str:
        return f"case {self.case_id} {self.day}"


class CommitFailure(models.Model):
    """A test's runs on one commit in one job, kept only where it failed.

    The evidence store: passes next to failures on the same commit and job
    are flakiness; failures with passes on the commits around them are
    isolated; failures many tests share in one run are an incident.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, db_index=False)
    commit_sha = models.CharField(max_length=64)
    job = models.CharField(max_length=255)
    on_default_branch = models.BooleanField()
    ran_at = models.DateTimeField()  # the commit's first run in this job
    failed_runs = models.PositiveIntegerField(default=0)
    passed_runs = models.PositiveIntegerField(default=0)
    incident_failures = models.PositiveIntegerField(default=0)
    in_run_flake = models.BooleanField(default=False)  # failed then passed in a run
    first_failed_upload = models.ForeignKey(
        Upload, on_delete=models.CASCADE, db_constraint=False, db_index=False
    )
    message = models.ForeignKey(
        FailureMessage,
        null=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        db_index=False,
    )

    class Meta:
        constraints = [
            # "This test's failures" for its verdict: evidence.cells_by_case,
            # and the conflict target of evidence.record_failures.
            models.UniqueConstraint(
                fields=["case", "commit_sha", "job"], name="commitfailure_uniq"
            ),
        ]
        indexes = [
            # A commit and job's failure rows: evidence.record_failures and
            # evidence.update_upload_totals.
            models.Index(
                fields=["project", "commit_sha", "job"], name="commitfailure_commit_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"case {self.case_id} failed at {self.commit_sha[:12]} in {self.job}"


class CaseState(models.Model):
    """A test's verdict, scores and duration figures: what the API reads."""

    case = models.OneToOneField(
        Case, primary_key=True, on_delete=models.CASCADE, related_name="state"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    status = models.CharField(
        max_length=12, choices=VERDICT_CHOICES, default=Status.NEW.value
    )
    quarantined = models.BooleanField(default=False)  # an accepted quarantine
    flake_score = models.FloatField(default=0)
    flake_rate = models.FloatField(default=0)
    runs = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    flake_events = models.PositiveIntegerField(default=0)
    first_flaky_commit = models.CharField(max_length=64, blank=True)
    broken_since_commit = models.CharField(max_length=64, blank=True)
    duration_p50_ms = models.FloatField(null=True)
    duration_p95_ms = models.FloatField(null=True)
    duration_regressed = models.BooleanField(default=False)
    duration_regressed_since_commit = models.CharField(max_length=64, blank=True)
    total_duration_ms = models.FloatField(default=0)  # CI time in the window
    last_run_at = models.DateTimeField(null=True)
    evidence = models.JSONField(default=list)
    top_signatures = models.JSONField(default=list)
    # The newest durations as [upload_id, ms, commit] triples, oldest first.
    recent_durations = models.JSONField(default=list)
    # The start of the current flaky episode as a range: the true start lies
    # after this commit and at or before first_flaky_commit with probability
    # verdicts.FLAKY_SINCE_PROBABILITY (analytics.verdicts.flaky_since).
    flaky_since = models.CharField(max_length=64, blank=True)
    # The verdict itself (flaky, fixed, broken...), kept apart from
    # ``status``, which reads "quarantined" while a quarantine is accepted.
    verdict = models.CharField(
        max_length=12, choices=VERDICT_CHOICES, default=Status.NEW.value
    )

    class Meta:
        indexes = [
            # queries.case_list filtered by status, ranked by flake_score.
            models.Index(
                fields=["project", "status", "-flake_score", "case"],
                name="casestate_status_idx",
            ),
            models.Index(
                fields=["project", "-flake_score"], name="casestate_score_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"case {self.case_id}: {self.status}"


class SuiteState(models.Model):
    """A suite's duration figures per run (sum of its tests' times)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    name = models.TextField()
    runs = models.PositiveIntegerField(default=0)
    tests = models.PositiveIntegerField(default=0)
    duration_p50_ms = models.FloatField(null=True)
    duration_p95_ms = models.FloatField(null=True)
    duration_regressed = models.BooleanField(default=False)
    duration_regressed_since_commit = models.CharField(max_length=64, blank=True)
    total_duration_ms = models.FloatField(default=0)
    last_run_at = models.DateTimeField(null=True)
    recent_durations = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="suitestate_uniq"),
        ]
        indexes = [
            # queries.suite_list(order="slowest").
            models.Index(
                fields=["project", "-total_duration_ms"], name="suitestate_slowest_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.name


# --- Ownership and layer rules (issue 10) -------------------------------------


class RuleKind(models.TextChoices):
    """What a rule's glob is matched against (flakewatch/ownership.py)."""

    PATH = "path", "path glob (the test's file)"
    CLASSNAME = "classname", "classname glob"
    SUITE = "suite", "suite glob"


class OwnershipRule(models.Model):
    """One line of a project's ownership: tests matching ``pattern`` -> a team.

    Precedence: manual rules after imported ones, then by ``line``; the last
    matching rule wins, as on GitHub. Path patterns read with GitHub's
    CODEOWNERS semantics (GitLab files are rewritten to them on import). A
    rule without a team un-owns what earlier rules matched. ``section`` and
    ``excluded`` carry GitLab's sections and ``!pattern`` lines.
    """

    class Source(models.TextChoices):
        IMPORTED = "imported", "imported from CODEOWNERS"
        MANUAL = "manual", "manual"

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="ownership_rules"
    )
    pattern = models.CharField(max_length=1000)
    kind = models.CharField(
        max_length=12, choices=RuleKind.choices, default=RuleKind.PATH
    )
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="ownership_rules",
        help_text="Empty: the rule un-owns what it matches.",
    )
    source = models.CharField(
        max_length=10, choices=Source.choices, default=Source.MANUAL
    )
    line = models.PositiveIntegerField(
        help_text="Precedence within its source: a higher line wins."
    )
    section = models.CharField(max_length=200, blank=True)
    excluded = models.BooleanField(
        default=False, help_text="A GitLab !pattern: takes paths out of its section."
    )
    # The CODEOWNERS owner the team stands for, as written (@org/payments).
    owner = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [
            # ownership.project_rules reads a project's rules in precedence
            # order.
            models.Index(
                fields=["project", "source", "line"], name="ownershiprule_order_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pattern} -> {self.team or 'nobody'}"


class LayerRule(models.Model):
    """One line of a project's layer rules, after the defaults of layers.py."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="layer_rules"
    )
    pattern = models.CharField(max_length=1000)
    kind = models.CharField(
        max_length=12, choices=RuleKind.choices, default=RuleKind.PATH
    )
    layer = models.CharField(max_length=12, choices=Layer.choices)
    line = models.PositiveIntegerField(help_text="Precedence: a higher line wins.")

    class Meta:
        indexes = [
            # ownership.project_rules reads them in line order.
            models.Index(fields=["project", "line"], name="layerrule_order_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.pattern} -> {self.layer}"


# --- Digests and change notifications (issue 12) ------------------------------


class StatusChange(models.Model):
    """A test's verdict changing in a way its team acts on.

    Written by the analysis in the batch that judges the change (the batch's
    newest upload is ``upload``), so a redelivered analysis never writes it
    twice. The digest reads "new flaky" and "fixed this week" from it; each
    change is what a webhook message announces.
    """

    class Kind(models.TextChoices):
        NEW_FLAKY = "new_flaky", "new flaky"
        BROKEN = "broken", "became broken"
        FIXED = "fixed", "fixed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, db_index=False)
    upload = models.ForeignKey(
        Upload, on_delete=models.CASCADE, db_constraint=False, db_index=False
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    old_status = models.CharField(max_length=12, choices=VERDICT_CHOICES)
    new_status = models.CharField(max_length=12, choices=VERDICT_CHOICES)
    changed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case", "upload"], name="statuschange_uniq"
            ),
        ]
        indexes = [
            # digest_queries.team_changes: a project's changes in a week.
            models.Index(
                fields=["project", "changed_at"], name="statuschange_week_idx"
            ),
            # notifications.deliver_notifications: one batch's changes.
            models.Index(fields=["upload"], name="statuschange_upload_idx"),
        ]

    def __str__(self) -> str:
        return f"case {self.case_id}: {self.old_status} -> {self.new_status}"


class DeliveryStatus(models.TextChoices):
    """Where a digest or a webhook message is in its delivery."""

    PENDING = "pending", "pending"
    SENDING = "sending", "sending"
    RETRYING = "retrying", "retrying"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"  # permanent: the attempts are used up
    SKIPPED = "skipped", "skipped"  # nothing to say, or nobody to say it to


class DigestDelivery(models.Model):
    """One team's digest for one week: claimed here before anything is sent."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="digests")
    week_start = models.DateField()  # first day of the 7 days, digest timezone
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # Addresses already sent to: a retry after a failure skips them.
    sent_to = models.JSONField(default=list, blank=True)
    # Addresses the server refused for good, with its answer.
    refused = models.JSONField(default=dict, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    last_error = models.TextField(blank=True)
    # Sending: a sender holds the row until then (past it, a crashed send is
    # resumed). Retrying: the next attempt waits until then.
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "week_start"], name="digestdelivery_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"digest {self.team_id} {self.week_start}: {self.status}"


class DigestUnsubscribe(models.Model):
    """An address that asked for no more of a team's digests."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE)
    email = models.CharField(max_length=320)  # lower-cased
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "email"], name="digestunsubscribe_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} from {self.team_id}"


class TeamWebhook(models.Model):
    """A URL that receives a team's change notifications."""

    class Kind(models.TextChoices):
        SLACK = "slack", "Slack / Mattermost"
        JSON = "json", "plain JSON event"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=1000)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.SLACK)
    # The HMAC-SHA256 key of the signature header; the receiver holds it too.
    secret = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.team_id} -> {self.url}"


class NotificationDelivery(models.Model):
    """One change for one webhook: at most one message carries it."""

    webhook = models.ForeignKey(
        TeamWebhook, on_delete=models.CASCADE, related_name="deliveries"
    )
    change = models.ForeignKey(StatusChange, on_delete=models.CASCADE)
    # The batch's newest upload: one message per webhook per batch.
    upload = models.ForeignKey(
        Upload, on_delete=models.CASCADE, db_constraint=False, db_index=False
    )
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)  # retrying: not before
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "change"], name="notificationdelivery_uniq"
            ),
        ]
        indexes = [
            # notifications.deliver_notifications: a batch's rows per webhook.
            models.Index(
                fields=["webhook", "upload", "status"],
                name="notification_batch_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"change {self.change_id} to webhook {self.webhook_id}: {self.status}"


# --- Quarantine (issue #10; flakewatch/quarantine.py holds the rules) -------


class Quarantine(models.Model):
    """A test's quarantine: suggested, accepted, dismissed or released.

    One row per test. A suggestion nobody acted on is deleted when the test
    stops being flaky; every other state stays, so the history reads from
    ``QuarantineEvent``.
    """

    class State(models.TextChoices):
        SUGGESTED = "suggested", "suggested"
        ACCEPTED = "accepted", "accepted"
        DISMISSED = "dismissed", "dismissed"
        RELEASED = "released", "released"
        NONE = "none", "none"  # kept only for a fix attempt; on no list

    case = models.OneToOneField(
        Case, primary_key=True, on_delete=models.CASCADE, related_name="quarantine"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    state = models.CharField(max_length=10, choices=State.choices)
    reason = models.TextField(blank=True)  # why it was suggested, in words
    owner = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True)
    since = models.DateTimeField()  # when it entered its current state
    expires_at = models.DateTimeField(null=True, blank=True)
    # The flake score a dismissal was made at: suggested again only above it
    # plus FLAKEWATCH_QUARANTINE_RESUGGEST_MARGIN.
    dismissed_score = models.FloatField(null=True, blank=True)
    # The flake rate when accepted: the rate the release rule is judged at.
    accepted_flake_rate = models.FloatField(null=True, blank=True)
    # Passes since acceptance and the passes the fixed rule needs, refreshed
    # after each analysis batch; ready when passes >= needed.
    release_passes = models.PositiveIntegerField(default=0)
    release_needed = models.PositiveIntegerField(default=0)
    ready_to_release = models.BooleanField(default=False)
    fix_commit = models.CharField(max_length=64, blank=True)
    fix_note = models.TextField(blank=True)
    fix_at = models.DateTimeField(null=True, blank=True)
    fix_flake_rate = models.FloatField(null=True, blank=True)
    # held / did not hold / not enough runs yet, with its numbers.
    fix_result = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            # quarantine.quarantine_list: a project's list by state.
            models.Index(fields=["project", "state"], name="quarantine_state_idx"),
        ]

    def __str__(self) -> str:
        return f"case {self.case_id}: {self.state}"


class QuarantineEvent(models.Model):
    """One change to a test's quarantine: who, when, what, why."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, db_index=False)
    at = models.DateTimeField()
    action = models.CharField(max_length=20)
    # "user:<name>", "token:<label> (<prefix>)", "flakewatch" or "shell".
    actor = models.CharField(max_length=300)
    note = models.TextField(blank=True)
    before = models.CharField(max_length=10, blank=True)  # the state before
    after = models.CharField(max_length=10, blank=True)

    class Meta:
        indexes = [
            # quarantine.events_of: one test's trail, newest first.
            models.Index(fields=["case", "-at"], name="quarantineevent_case_idx"),
        ]

    def __str__(self) -> str:
        return f"case {self.case_id} {self.action} by {self.actor}"
