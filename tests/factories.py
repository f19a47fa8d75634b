"""Model factories (factory_boy) and builders of JUnit XML reports for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

import factory
from factory.django import DjangoModelFactory

from flakewatch.models import (
    ApiToken,
    Case,
    CaseResult,
    CaseState,
    Project,
    SuiteState,
    Team,
    Upload,
)
from flakewatch.outcomes import Outcome
from flakewatch.results import identity_hash
from flakewatch.tokens import hash_token

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class ProjectFactory(DjangoModelFactory):
    class Meta:
        model = Project
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class ApiTokenFactory(DjangoModelFactory):
    """A token row; ``raw`` (not stored) is the secret to send as Bearer."""

    class Meta:
        model = ApiToken
        exclude = ("raw",)

    project = factory.SubFactory(ProjectFactory)
    scope = ApiToken.Scope.UPLOAD
    raw = factory.Sequence(lambda n: f"fwt_factory-token-{n}")
    prefix = factory.LazyAttribute(lambda o: o.raw[:12])
    token_hash = factory.LazyAttribute(lambda o: hash_token(o.raw))


class UploadFactory(DjangoModelFactory):
    class Meta:
        model = Upload

    project = factory.SubFactory(ProjectFactory)
    commit_sha = factory.Sequence(lambda n: f"{n:040x}")
    branch = "main"
    build = factory.Sequence(lambda n: str(100 + n))
    job = "unit"
    idempotency_key = factory.Sequence(lambda n: f"key-{n}")


class TeamFactory(DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class CaseFactory(DjangoModelFactory):
    """A test identity, hashed as the write path hashes it."""

    class Meta:
        model = Case

    project = factory.SubFactory(ProjectFactory)
    suite = "unit"
    classname = "tests.test_mod"
    name = factory.Sequence(lambda n: f"test_{n}")
    file = ""
    first_seen_at = T0
    identity_hash = factory.LazyAttribute(
        lambda o: identity_hash(o.suite, o.classname, o.name, o.file)
    )


class CaseStateFactory(DjangoModelFactory):
    class Meta:
        model = CaseState

    case = factory.SubFactory(CaseFactory)
    project = factory.SelfAttribute("case.project")
    status = "healthy"


class CaseResultFactory(DjangoModelFactory):
    class Meta:
        model = CaseResult

    case = factory.SubFactory(CaseFactory)
    upload = factory.SubFactory(
        UploadFactory, project=factory.SelfAttribute("..case.project")
    )
    retry_index = 0
    outcome = Outcome.PASSED
    duration_ms = 10.0


class SuiteStateFactory(DjangoModelFactory):
    class Meta:
        model = SuiteState

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"suite-{n}")


def junit_report(
    count: int,
    *,
    failing: frozenset[int] | set[int] = frozenset(),
    suite: str = "pytest",
    module: str = "tests.test_mod",
    seconds: float = 0.01,
) -> bytes:
    """Return a pytest-style report of ``count`` testcases named test_0..N-1."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<testsuites>"]
    lines.append(f"<testsuite name={quoteattr(suite)} tests={quoteattr(str(count))}>")
    for i in range(count):
        attrs = (
            f'classname="{module}" name="test_{i}" file="tests/test_mod.py" '
            f'time="{seconds:.4f}"'
        )
        if i in failing:
            lines.append(
                f'<testcase {attrs}><failure message="assert {i} == 0">'
                f"AssertionError: assert {i} == 0</failure></testcase>"
            )
        else:
            lines.append(f"<testcase {attrs}/>")
    lines.append("</testsuite></testsuites>")
    return "\n".join(lines).encode()
