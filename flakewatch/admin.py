"""Admin: browse projects, uploads and tests; audit and revoke tokens."""

from django.contrib import admin
from django.http import HttpRequest

from flakewatch.models import (
    ApiToken,
    Case,
    DigestDelivery,
    DigestUnsubscribe,
    NotificationDelivery,
    Project,
    TeamWebhook,
    Upload,
)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin[Project]):
    """List and search projects."""

    list_display = ("slug", "name", "default_branch", "created_at")
    search_fields = ("slug", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    """Tokens are created by ``manage.py createtoken``; admin audits and revokes."""

    list_display = ("prefix", "project", "scope", "label", "last_used_at", "revoked_at")
    list_filter = ("scope", "project")
    readonly_fields = ("prefix", "token_hash", "created_at", "last_used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Refuse: createtoken issues tokens and shows each secret once."""
        return False


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin[Upload]):
    """Show uploads read-only: their rows are the ingest pipeline's record."""

    list_display = ("id", "project", "job", "build", "attempt", "commit_sha", "status")
    list_filter = ("status", "project")
    search_fields = ("commit_sha", "build", "job")
    exclude = ("idempotency_key",)
    readonly_fields = [
        f.name for f in Upload._meta.fields if f.name not in ("idempotency_key",)
    ]


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin[Case]):
    """List and search tests by name."""

    list_display = ("name", "classname", "suite", "project")
    list_filter = ("project",)
    search_fields = ("name", "classname")
    exclude = ("identity_hash",)


# --- Digests and change notifications (issue 12) ------------------------------


@admin.register(DigestDelivery)
class DigestDeliveryAdmin(admin.ModelAdmin[DigestDelivery]):
    """Show each team's weekly digest: sent, retrying or failed, and why."""

    list_display = ("team", "week_start", "status", "attempts", "sent_at", "subject")
    list_filter = ("status", "week_start")
    search_fields = ("team__slug", "last_error")
    readonly_fields = [f.name for f in DigestDelivery._meta.fields]


@admin.register(DigestUnsubscribe)
class DigestUnsubscribeAdmin(admin.ModelAdmin[DigestUnsubscribe]):
    """List who unsubscribed; deleting a row subscribes the address again."""

    list_display = ("email", "team", "created_at")
    search_fields = ("email",)


@admin.register(TeamWebhook)
class TeamWebhookAdmin(admin.ModelAdmin[TeamWebhook]):
    """Add and switch off a team's webhook URLs."""

    list_display = ("team", "url", "kind", "active")
    list_filter = ("kind", "active")


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin[NotificationDelivery]):
    """Show each change's webhook message: sent, retrying or failed, and why."""

    list_display = ("change", "webhook", "status", "attempts", "sent_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in NotificationDelivery._meta.fields]
