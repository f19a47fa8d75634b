"""Admin: browse projects, uploads and tests; audit and revoke tokens."""

from typing import Any, TypeVar

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from flakewatch import ownership
from flakewatch.codeowners import name_glob_regex, path_glob_regex
from flakewatch.models import (
    ApiToken,
    Case,
    DigestDelivery,
    DigestUnsubscribe,
    LayerRule,
    NotificationDelivery,
    OwnershipRule,
    Project,
    RuleKind,
    Team,
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

    list_display = ("name", "classname", "suite", "project", "team", "layer")
    list_filter = ("project", "layer", "team")
    search_fields = ("name", "classname")
    exclude = ("identity_hash",)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    """Edit teams: shared across projects, with their digest addresses."""

    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")


def _check_pattern(form: forms.ModelForm[Any]) -> None:
    """Add a form error when the rule's pattern cannot be compiled."""
    pattern = form.cleaned_data.get("pattern") or ""
    kind = form.cleaned_data.get("kind")
    try:
        if kind == RuleKind.PATH:
            path_glob_regex(pattern)
        else:
            name_glob_regex(pattern)
    except ValueError as exc:
        form.add_error("pattern", str(exc))


class RuleForm(forms.ModelForm[Any]):
    """Refuse a pattern the matcher cannot compile."""

    def clean(self) -> dict[str, Any] | None:
        """Check the pattern against its kind."""
        cleaned = super().clean()
        _check_pattern(self)
        return cleaned


_Rule = TypeVar("_Rule", bound=OwnershipRule | LayerRule)


class ReassigningAdmin(admin.ModelAdmin[_Rule]):
    """Re-assign the project's tests whenever one of its rules changes."""

    form = RuleForm

    def save_model(
        self, request: HttpRequest, obj: _Rule, form: forms.Form, change: bool
    ) -> None:
        """Save the rule, then re-assign its project's tests."""
        super().save_model(request, obj, form, change)
        ownership.assign_project(obj.project)
        if change and "project" in form.changed_data:  # moved: the old one too
            old = Project.objects.filter(pk=form.initial.get("project", 0)).first()
            if old is not None:
                ownership.assign_project(old)

    def delete_model(self, request: HttpRequest, obj: _Rule) -> None:
        """Delete the rule, then re-assign its project's tests."""
        project = obj.project
        super().delete_model(request, obj)
        ownership.assign_project(project)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[_Rule]) -> None:
        """Delete the rules, then re-assign the tests of their projects."""
        projects = list(Project.objects.filter(pk__in=queryset.values("project")))
        super().delete_queryset(request, queryset)
        for project in projects:
            ownership.assign_project(project)


@admin.register(OwnershipRule)
class OwnershipRuleAdmin(ReassigningAdmin[OwnershipRule]):
    """Edit ownership rules; imported ones are replaced by the next import."""

    list_display = ("project", "source", "line", "kind", "pattern", "team")
    list_filter = ("project", "source", "kind")
    search_fields = ("pattern",)
    ordering = ("project", "source", "line")


@admin.register(LayerRule)
class LayerRuleAdmin(ReassigningAdmin[LayerRule]):
    """Edit a project's layer rules (they apply after the defaults)."""

    list_display = ("project", "line", "kind", "pattern", "layer")
    list_filter = ("project", "layer", "kind")
    ordering = ("project", "line")


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
