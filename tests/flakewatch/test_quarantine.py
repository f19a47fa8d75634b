"""The quarantine workflow through the HTTP API: suggest, act, list, expire.

History is built by ingesting real reports (``ingest_now``), so every
suggestion and judgement here comes from verdicts the analytics made.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from xml.sax.saxutils import quoteattr

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from flakewatch import runner_filters
from flakewatch.models import Case, CaseState, Project, Quarantine, QuarantineEvent
from flakewatch.tokens import issue_token
from ingest.services import UploadMetadata, ingest_now, receive_file

_serial = itertools.count(1)
PASS, FLAKE, FAIL = "pass", "flake", "fail"
CLASS = "tests.test_mod"


def report(outcomes: dict[str, str], *, message: str = "boom: timeout 3s") -> bytes:
    """Return a Surefire-style report; FLAKE is a failure then a rerun pass."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>', '<testsuite name="unit">']
    for name, outcome in outcomes.items():
        attrs = f'classname="{CLASS}" name={quoteattr(name)} time="0.01"'
        if outcome == PASS:
            lines.append(f"<testcase {attrs}/>")
        elif outcome == FLAKE:
            lines.append(
                f"<testcase {attrs}><flakyFailure message={quoteattr(message)}/>"
                "</testcase>"
            )
        else:
            lines.append(
                f"<testcase {attrs}><failure message={quoteattr(message)}/></testcase>"
            )
    lines.append("</testsuite>")
    return "\n".join(lines).encode()


def run(project: Project, outcomes: dict[str, str], **kw) -> str:
    """Ingest one CI run on a new default-branch commit; return the commit."""
    n = next(_serial)
    commit = kw.pop("commit", f"{n:040x}")
    body = report(outcomes, **kw)
    meta = UploadMetadata(commit_sha=commit, branch="main", build=str(n), job="unit")
    ingest_now(project, meta=meta, files=[receive_file("r.xml", [body], budget=10**8)])
    return commit


def history(project: Project, runs: int = 12) -> None:
    """Build a history: one flaky test above the threshold, one below, one broken."""
    for i in range(runs):
        run(
            project,
            {
                "test_flaky": FLAKE if i % 3 == 0 else PASS,
                "test_mild": FLAKE if i in (4, 8) else PASS,
                "test_broken": FAIL if i >= runs - 4 else PASS,
                "test_ok": PASS,
            },
        )


def case(project: Project, name: str) -> Case:
    return Case.objects.get(project=project, name=name)


def get(client, token: str, path: str = "", *, etag: str | None = None, **params):
    headers = {"Authorization": f"Bearer {token}"}
    if etag is not None:
        headers["If-None-Match"] = etag
    return client.get(
        f"/api/v1/projects/payments/quarantine{path}", params, headers=headers
    )


def post(client, token: str, case_id: int, slug: str = "payments", **body):
    return client.post(
        f"/api/v1/projects/{slug}/quarantine/{case_id}",
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


def assert_detail(response, status: int, phrase: str) -> None:
    assert response.status_code == status, response.content
    assert list(response.json()) == ["detail"]
    assert phrase in response.json()["detail"]


@pytest.fixture
def manage_token(project) -> str:
    return issue_token(project, scope="manage", label="quarantine-repo")


@pytest.fixture
def flaky_history(project):
    history(project)
    return project


def listed(client, token, **params) -> dict[str, dict]:
    response = get(client, token, **params)
    assert response.status_code == 200, response.content
    return {row["name"]: row for row in response.json()["results"]}


# --- Suggestions ---------------------------------------------------------------


def test_flaky_test_above_threshold_is_suggested_with_its_evidence_in_words(
    client, flaky_history, read_token
):
    project = flaky_history
    states = {
        s.case.name: s
        for s in CaseState.objects.filter(project=project).select_related("case")
    }
    assert states["test_flaky"].verdict == "flaky"
    assert states["test_mild"].verdict == "flaky"  # flaky, but below the threshold
    assert states["test_broken"].verdict == "broken"

    rows = listed(client, read_token)

    assert set(rows) == {"test_flaky"}
    row = rows["test_flaky"]
    assert row["state"] == "suggested"
    assert row["owner"] == "" and row["expires"] is None and not row["expired"]
    flaky = states["test_flaky"]
    runs = round(flaky.flake_events / flaky.flake_rate)
    assert row["reason"] == (
        f"failed then passed on retry in {flaky.flake_events} of its last {runs} "
        f"runs ({flaky.flake_events} commits, 1 job)"
    )
    assert flaky.flake_events == 4  # runs 0, 3, 6 and 9 flaked
    trail = QuarantineEvent.objects.get(case=case(project, "test_flaky"))
    assert (trail.actor, trail.action, trail.after) == (
        "flakewatch",
        "suggest",
        "suggested",
    )


def test_threshold_setting_decides_which_flaky_tests_are_suggested(
    client, project, read_token, settings
):
    settings.FLAKEWATCH_QUARANTINE_SUGGEST_SCORE = 0.0001
    history(project)
    assert set(listed(client, read_token)) == {"test_flaky", "test_mild"}


def test_suggestion_goes_away_when_the_test_stops_being_flaky(
    client, flaky_history, read_token
):
    project = flaky_history
    flaky = case(project, "test_flaky")
    for _ in range(60):
        run(project, {"test_flaky": PASS})
        if CaseState.objects.get(case=flaky).verdict != "flaky":
            break
    assert CaseState.objects.get(case=flaky).verdict == "fixed"
    assert listed(client, read_token) == {}
    assert not Quarantine.objects.filter(case=flaky).exists()
    actions = list(
        QuarantineEvent.objects.filter(case=flaky)
        .order_by("at")
        .values_list("action", flat=True)
    )
    assert actions == ["suggest", "withdraw"]


def test_dismissed_test_is_suggested_again_only_after_its_score_rises_by_the_margin(
    client, flaky_history, manage_token, read_token, settings
):
    project = flaky_history
    flaky = case(project, "test_flaky")
    dismissed = post(client, manage_token, flaky.pk, action="dismiss", note="known")
    assert dismissed.status_code == 200, dismissed.content
    score = CaseState.objects.get(case=flaky).flake_score
    settings.FLAKEWATCH_QUARANTINE_RESUGGEST_MARGIN = 0.03

    run(project, {"test_flaky": FLAKE})  # the score rises, but by less
    rising = CaseState.objects.get(case=flaky).flake_score
    assert score < rising < score + 0.03
    assert listed(client, read_token) == {}
    for _ in range(10):
        run(project, {"test_flaky": FLAKE})
        if CaseState.objects.get(case=flaky).flake_score >= score + 0.03:
            break
    assert CaseState.objects.get(case=flaky).flake_score >= score + 0.03
    assert listed(client, read_token)["test_flaky"]["state"] == "suggested"


def test_a_broken_test_is_never_suggested_even_with_no_threshold(
    client, project, read_token, settings
):
    settings.FLAKEWATCH_QUARANTINE_SUGGEST_SCORE = 0.0
    for i in range(12):
        run(project, {"test_broken": FAIL if i >= 4 else PASS, "test_ok": PASS})
    assert CaseState.objects.get(case=case(project, "test_broken")).verdict == "broken"
    assert listed(client, read_token) == {}


# --- Actions and refusals ------------------------------------------------------


def test_accept_puts_the_test_on_the_list_and_in_the_tests_api(
    client, flaky_history, manage_token, read_token
):
    project = flaky_history
    flaky = case(project, "test_flaky")

    response = post(
        client, manage_token, flaky.pk, action="accept", owner="alice", note="JIRA-1"
    )

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "accepted"
    row = listed(client, read_token)["test_flaky"]
    assert (row["state"], row["owner"], row["expired"]) == ("accepted", "alice", False)
    since = timezone.datetime.fromisoformat(row["since"])
    expires = timezone.datetime.fromisoformat(row["expires"])
    assert expires - since == timedelta(days=30)
    text = get(client, read_token, format="text")
    assert text.content.decode() == f"{CLASS}::test_flaky\n"

    tests = client.get(
        "/api/v1/projects/payments/tests",
        {"status": "quarantined"},
        headers={"Authorization": f"Bearer {read_token}"},
    ).json()["results"]
    assert [t["name"] for t in tests] == ["test_flaky"]
    assert tests[0]["status"] == "quarantined"
    assert tests[0]["quarantine"] == {
        "state": "accepted",
        "verdict": "flaky",
        "owner": "alice",
        "since": row["since"],
        "expires": row["expires"],
        "expired": False,
        "ready_to_release": False,
    }
    detail = client.get(
        f"/api/v1/projects/payments/tests/{case(project, 'test_ok').pk}",
        headers={"Authorization": f"Bearer {read_token}"},
    ).json()
    assert detail["quarantine"] is None

    trail = QuarantineEvent.objects.filter(case=flaky).order_by("at", "pk")
    last = trail.last()
    assert last.action == "accept" and last.note == "JIRA-1"
    assert last.actor.startswith("token:quarantine-repo (fwm_")
    assert (last.before, last.after) == ("suggested", "accepted")


def test_quarantine_survives_new_runs_and_keeps_the_verdict_apart(
    client, flaky_history, manage_token, read_token
):
    project = flaky_history
    flaky = case(project, "test_flaky")
    post(client, manage_token, flaky.pk, action="accept", owner="alice")
    run(project, {"test_flaky": FLAKE})
    state = CaseState.objects.get(case=flaky)
    assert (state.status, state.verdict, state.quarantined) == (
        "quarantined",
        "flaky",
        True,
    )
    assert listed(client, read_token)["test_flaky"]["state"] == "accepted"


@pytest.mark.parametrize("scope", ["read", "upload"])
def test_read_and_upload_tokens_cannot_act_and_are_told_the_scope(
    client, flaky_history, scope
):
    token = issue_token(flaky_history, scope=scope)
    flaky = case(flaky_history, "test_flaky")
    response = post(client, token, flaky.pk, action="accept", owner="alice")
    assert_detail(response, 403, "manage token")
    assert Quarantine.objects.get(case=flaky).state == "suggested"


def _snapshot(project):
    return (
        list(Quarantine.objects.values_list("case_id", "state", "owner", "expires_at")),
        QuarantineEvent.objects.count(),
        Project.objects.get(pk=project.pk).quarantine_version,
    )


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"action": "ban"}, 400, "action must be one of"),
        ({}, 400, "action must be one of"),
        ({"action": "accept"}, 400, "owner is required"),
        ({"action": "accept", "owner": "a", "expires": "2020-01-01"}, 400, "past"),
        ({"action": "accept", "owner": "a", "expires": "soon"}, 400, "ISO 8601"),
        ({"action": "release"}, 400, "not quarantined"),
        ({"action": "fix_attempted"}, 400, "commit is required"),
    ],
)
def test_bad_actions_are_refused_and_change_nothing(
    client, flaky_history, manage_token, body, status, phrase
):
    flaky = case(flaky_history, "test_flaky")
    before = _snapshot(flaky_history)
    assert_detail(post(client, manage_token, flaky.pk, **body), status, phrase)
    assert _snapshot(flaky_history) == before


def test_unknown_and_other_projects_test_ids_are_404_and_change_nothing(
    client, flaky_history, manage_token
):
    other = Project.objects.create(slug="other", name="Other")
    run(other, {"test_x": PASS})
    foreign = Case.objects.get(project=other)
    before = _snapshot(flaky_history)
    for case_id in (foreign.pk, 999_999):
        response = post(client, manage_token, case_id, action="accept", owner="a")
        assert_detail(response, 404, f"No test {case_id} in project payments")
    response = post(
        client, manage_token, foreign.pk, slug="other", action="accept", owner="a"
    )
    assert_detail(response, 404, "No project 'other' for this token")
    assert _snapshot(flaky_history) == before


def test_dismissing_an_accepted_quarantine_is_refused(
    client, flaky_history, manage_token
):
    flaky = case(flaky_history, "test_flaky")
    post(client, manage_token, flaky.pk, action="accept", owner="alice")
    assert_detail(
        post(client, manage_token, flaky.pk, action="dismiss"), 400, "release it"
    )


def test_expired_quarantine_is_flagged_and_stays_on_the_list(
    client, flaky_history, manage_token, read_token
):
    flaky = case(flaky_history, "test_flaky")
    soon = (timezone.now() + timedelta(hours=1)).isoformat()
    post(client, manage_token, flaky.pk, action="accept", owner="a", expires=soon)
    fresh = get(client, read_token, format="text")
    assert listed(client, read_token)["test_flaky"]["expired"] is False
    # The hour passes: the row's expiry is now behind us.
    Quarantine.objects.filter(case=flaky).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    row = listed(client, read_token)["test_flaky"]
    assert (row["state"], row["expired"]) == ("accepted", True)
    text = get(client, read_token, format="text", etag=fresh["ETag"])
    assert text.status_code == 200  # the list changed: it has an expired entry
    assert text.content.decode() == f"{CLASS}::test_flaky\n"


def test_release_readiness_follows_the_fixed_rule_then_release_restores_the_verdict(
    client, flaky_history, manage_token, read_token
):
    project = flaky_history
    flaky = case(project, "test_flaky")
    post(client, manage_token, flaky.pk, action="accept", owner="alice")
    row = Quarantine.objects.get(case=flaky)
    from flakewatch.analytics.scoring import passes_to_call_fixed

    rate = CaseState.objects.get(case=flaky).flake_rate
    assert row.accepted_flake_rate == rate
    needed = passes_to_call_fixed(rate)
    assert row.release_needed == needed
    for _ in range(needed - 1):
        run(project, {"test_flaky": PASS})
    row.refresh_from_db()
    assert (row.release_passes, row.ready_to_release) == (needed - 1, False)
    assert listed(client, read_token)["test_flaky"]["ready_to_release"] is False
    run(project, {"test_flaky": PASS})
    assert listed(client, read_token)["test_flaky"]["ready_to_release"] is True

    response = post(client, manage_token, flaky.pk, action="release", note="fixed")
    assert response.status_code == 200, response.content
    assert listed(client, read_token) == {}
    state = CaseState.objects.get(case=flaky)
    assert state.quarantined is False
    assert state.status == state.verdict != "quarantined"
    assert_detail(
        post(client, manage_token, flaky.pk, action="release"), 400, "not quarantined"
    )


def test_a_failure_since_acceptance_restarts_the_count(
    client, flaky_history, manage_token
):
    project = flaky_history
    flaky = case(project, "test_flaky")
    post(client, manage_token, flaky.pk, action="accept", owner="alice")
    for outcome in (PASS, PASS, FLAKE, PASS):
        run(project, {"test_flaky": outcome})
    assert Quarantine.objects.get(case=flaky).release_passes == 1


# --- Fix attempts ----------------------------------------------------------------


def test_fix_attempt_is_pending_then_held_after_enough_clean_runs(
    client, flaky_history, manage_token
):
    project = flaky_history
    flaky = case(project, "test_flaky")
    response = post(
        client,
        manage_token,
        flaky.pk,
        action="fix_attempted",
        commit="f1x",
        note="pr 9",
    )
    assert response.status_code == 200, response.content
    result = Quarantine.objects.get(case=flaky).fix_result
    assert result["state"] == "not enough runs yet" and result["runs"] == 0
    needed = result["needed"]
    run(project, {"test_flaky": PASS}, commit="f1x")
    result = Quarantine.objects.get(case=flaky).fix_result
    assert (result["state"], result["runs"]) == ("not enough runs yet", 1)
    assert f"(1 of {needed})" in result["detail"]
    for _ in range(needed - 1):
        run(project, {"test_flaky": PASS})
    result = Quarantine.objects.get(case=flaky).fix_result
    assert (result["state"], result["runs"]) == ("held", needed)
    assert "ceil(ln 0.05 / ln(1 - p))" in result["detail"]


@pytest.mark.parametrize(
    ("message", "new"), [("boom: timeout 9s", False), ("KeyError: 'user'", True)]
)
def test_fix_attempt_that_fails_again_did_not_hold_naming_the_signature(
    client, flaky_history, manage_token, message, new
):
    project = flaky_history
    flaky = case(project, "test_flaky")
    post(client, manage_token, flaky.pk, action="fix_attempted", commit="f1x")
    run(project, {"test_flaky": PASS}, commit="f1x")
    run(project, {"test_flaky": FLAKE}, message=message)
    result = Quarantine.objects.get(case=flaky).fix_result
    assert result["state"] == "did not hold"
    assert result["new_signature"] is new
    assert ("a new failure signature" in result["detail"]) is new


# --- The list CI reads -------------------------------------------------------------


def test_etag_answers_304_until_the_list_changes(
    client, flaky_history, manage_token, upload_token
):
    first = get(client, upload_token, format="pytest")
    assert first.status_code == 200
    etag = first["ETag"]
    again = get(client, upload_token, format="pytest", etag=etag)
    assert again.status_code == 304 and again.content == b""
    other = get(client, upload_token, format="jest", etag=etag)
    assert other.status_code == 200  # another rendering, another tag
    run(flaky_history, {"test_ok": PASS})  # an analysis that changes no row
    assert get(client, upload_token, format="pytest", etag=etag).status_code == 304

    flaky = case(flaky_history, "test_flaky")
    post(client, manage_token, flaky.pk, action="accept", owner="a")
    changed = get(client, upload_token, format="pytest", etag=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


NASTY = ["test_a[x-y]", "test with space", "test_(re)*+?", "tést_ünïcode", 'q"uote']


@pytest.mark.parametrize("fmt", sorted(runner_filters.FORMATS))
def test_every_format_serves_the_accepted_list_in_the_runners_form(
    client, project, manage_token, read_token, fmt
):
    run(project, {name: PASS for name in [*NASTY, "test_kept"]})
    for name in NASTY:
        post(client, manage_token, case(project, name).pk, action="accept", owner="a")

    response = get(client, read_token, format=fmt)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    items = [
        runner_filters.QuarantineItem(name=c.name, classname=c.classname, suite=c.suite)
        for c in Case.objects.filter(project=project, name__in=NASTY).order_by("pk")
    ]
    assert response.content.decode() == runner_filters.render(fmt, items)
    assert "test_kept" not in response.content.decode()


def test_list_filters_by_state_and_team_and_refuses_unknown_values(
    client, flaky_history, manage_token, read_token
):
    from flakewatch.models import Team

    payments = Team.objects.create(slug="payments-team", name="Payments")
    Case.objects.filter(name="test_mild").update(team=payments)
    mild = case(flaky_history, "test_mild")
    post(client, manage_token, mild.pk, action="accept", owner="bob")

    assert set(listed(client, read_token, state="accepted")) == {"test_mild"}
    assert set(listed(client, read_token, state="suggested")) == {"test_flaky"}
    team_rows = listed(client, read_token, team="payments-team")
    assert set(team_rows) == {"test_mild"}
    assert team_rows["test_mild"]["team"] == "payments-team"
    assert set(listed(client, read_token, team="none")) == {"test_flaky"}
    assert_detail(get(client, read_token, state="dismissed"), 400, "state must be")
    assert_detail(get(client, read_token, format="xml"), 400, "format must be")


def test_list_needs_a_token_of_the_project(client, flaky_history):
    assert client.get("/api/v1/projects/payments/quarantine").status_code == 401
    other = Project.objects.create(slug="other", name="Other")
    token = issue_token(other, scope="read")
    assert_detail(get(client, token), 404, "No project 'payments'")


# --- The shell ------------------------------------------------------------------


def test_shell_command_applies_the_same_actions(flaky_history, capsys):
    flaky = case(flaky_history, "test_flaky")
    call_command(
        "quarantine",
        "--project",
        "payments",
        str(flaky.pk),
        "--action",
        "accept",
        "--owner",
        "carol",
        "--expires",
        "2099-01-01",
    )
    assert capsys.readouterr().out.strip() == f"test {flaky.pk}: accepted"
    row = Quarantine.objects.get(case=flaky)
    assert (row.owner, row.expires_at.year) == ("carol", 2099)
    assert QuarantineEvent.objects.filter(case=flaky).last().actor.startswith("shell:")
    with pytest.raises(CommandError, match="not quarantined"):
        call_command(
            "quarantine",
            "--project",
            "payments",
            str(case(flaky_history, "test_ok").pk),
            "--action",
            "release",
        )


def test_createtoken_issues_a_manage_token(project, capsys):
    call_command("createtoken", "payments", "--scope", "manage")
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("fwm_")
