from django.contrib import admin

from flakewatch.models import ApiToken, Case, Project, Upload


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "default_branch", "created_at")
    search_fields = ("slug", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created by ``manage.py createtoken``; admin audits and revokes."""

    list_display = ("prefix", "project", "scope", "label", "last_used_at", "revoked_at")
    list_filter = ("scope", "project")
    readonly_fields = ("prefix", "token_hash", "created_at", "last_used_at")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "job", "build", "attempt", "commit_sha", "status")
    list_filter = ("status", "project")
    search_fields = ("commit_sha", "build", "job")
    exclude = ("idempotency_key",)
    readonly_fields = [
        f.name for f in Upload._meta.fields if f.name not in ("idempotency_key",)
    ]


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("name", "classname", "suite", "project")
    list_filter = ("project",)
    search_fields = ("name", "classname")
    exclude = ("identity_hash",)
