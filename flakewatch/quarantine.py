"""The quarantine workflow: suggest, accept or dismiss, expire, release.

The only place with the rules; the API, the ``quarantine`` command and the
analysis hook call these functions. A quarantined test keeps running and
reporting: only its failures stop failing the build (``flakewatch.gate``).

- **Suggest** (``refresh_after_batch``, after each analysis batch): a test
  judged flaky whose flake score reaches FLAKEWATCH_QUARANTINE_SUGGEST_SCORE,
  with the reason in words taken from its verdict's evidence. Never a
  broken, new, healthy or fixed test. A suggestion nobody acted on goes away
  when the test stops being flaky.
- **Accept** (owner, note, expiry: default FLAKEWATCH_QUARANTINE_DAYS) puts it
  on the list CI reads; **dismiss** keeps it off until its score rises by
  FLAKEWATCH_QUARANTINE_RESUGGEST_MARGIN over the score it was dismissed at;
  **release** takes an accepted test off the list.
- **Expired** quarantines stay on the list, flagged, until someone acts: CI
  must not go red overnight because a date passed.
- **Ready to release**: the passes since acceptance reach the fixed rule at
  the rate it was accepted at (``scoring.passes_to_call_fixed``).
- **Fix attempt** (commit, note): judged from the commit's first
  default-branch run on as held, did not hold (old or new failure
  signature) or not enough runs yet (n of N), by the same rule at the
  pre-fix flake rate.

Every change writes a ``QuarantineEvent`` (who, when, what, why) and bumps
the project's ``quarantine_version`` in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from flakewatch import db
from flakewatch.analytics import scoring
from flakewatch.analytics.verdicts import IN_RUN, ISOLATED, SAME_COMMIT
from flakewatch.models import (
    ApiToken,
    Case,
    CaseResult,
    CaseState,
    Project,
    Quarantine,
    QuarantineEvent,
    Upload,
)
from flakewatch.outcomes import Outcome, Status

State = Quarantine.State
ACTIONS = ("accept", "dismiss", "release", "fix_attempted")
# States that put a test on the list (JSON); text forms serve ACCEPTED only.
LISTED = (State.SUGGESTED, State.ACCEPTED)
# A row kept only for its fix attempt: not on any list.
NONE = State.NONE
SYSTEM = "flakewatch"
FAILED = (Outcome.FAILED.value, Outcome.ERROR.value)
HELD, NOT_HELD, PENDING = "held", "did not hold", "not enough runs yet"
_EVIDENCE_WORDS = {
    IN_RUN: "failed then passed on retry",
    SAME_COMMIT: "failed and passed on the same commit",
    ISOLATED: "failed once between passes",
}


class QuarantineError(Exception):
    """An action refused; ``detail`` says why, ``status`` is its HTTP code."""

    status = 400

    def __init__(self, detail: str) -> None:
        """Keep the sentence a person acts on."""
        super().__init__(detail)
        self.detail = detail


class UnknownTest(QuarantineError):
    """No such test in the project."""

    status = 404


@dataclass(frozen=True, slots=True)
class ListItem:
    """One test on a project's quarantine list."""

    id: int
    suite: str
    classname: str
    name: str
    file: str
    team: str | None
    state: str
    reason: str
    owner: str
    since: datetime
    expires: datetime | None
    expired: bool
    ready_to_release: bool


def token_actor(token: ApiToken) -> str:
    """Name a token in the audit trail by its label and prefix."""
    return f"token:{token.label or token.scope} ({token.prefix}…)"


def parse_expiry(text: str | None, *, now: datetime) -> datetime | None:
    """Read an ISO date or datetime (UTC unless it says); None when empty.

    A date means the start of that day, UTC. Raises QuarantineError for
    text that is neither, or for a moment that is not in the future.
    """
    if text is None or not str(text).strip():
        return None
    raw = str(text).strip()
    try:
        moment = parse_datetime(raw)
        day = None if moment else parse_date(raw)
    except ValueError:
        moment = day = None
    if moment is None and day is None:
        raise QuarantineError(
            f"expires {raw!r} is not an ISO 8601 date or time (e.g. 2027-01-31)."
        )
    if moment is None:
        assert isinstance(day, date)
        moment = datetime.combine(day, time(0), tzinfo=UTC)
    elif timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    if moment <= now:
        raise QuarantineError(
            f"expires {raw!r} is in the past; give a later date, or none for the "
            f"default of {settings.FLAKEWATCH_QUARANTINE_DAYS} days."
        )
    return moment


def act(
    project: Project,
    *,
    case_id: int,
    action: str,
    actor: str,
    owner: str = "",
    note: str = "",
    expires: str | None = None,
    commit: str = "",
    now: datetime | None = None,
) -> Quarantine:
    """Apply one action to a test of ``project`` and record it; return the row.

    Raises UnknownTest (another project's id reads the same) or
    QuarantineError, having changed nothing. Owns its transaction.
    """
    now = now or timezone.now()
    if action not in ACTIONS:
        raise QuarantineError(
            f"action {action!r} is not one of {', '.join(ACTIONS)}; send one of them."
        )
    expires_at = parse_expiry(expires, now=now)
    owner, note, commit = owner.strip(), note.strip(), commit.strip()
    with transaction.atomic():
        case = Case.objects.filter(project=project, pk=case_id).first()
        if case is None:
            raise UnknownTest(
                f"No test {case_id} in project {project.slug}; take the id from "
                "the tests API of this project."
            )
        row = Quarantine.objects.select_for_update().filter(case=case).first()
        state = CaseState.objects.filter(case=case).first()
        before = row.state if row else ""
        if row is None:
            row = Quarantine(case=case, project=project, state=NONE, since=now)
        _apply(row, state, action, owner, note, expires_at, commit, now)
        row.save()
        _sync_case_state(case, project, state, quarantined=row.state == State.ACCEPTED)
        QuarantineEvent.objects.create(
            project=project,
            case=case,
            at=now,
            action=action,
            actor=actor,
            note=note or (f"commit {commit}" if commit else ""),
            before=before,
            after=row.state,
        )
        _bump_version(project.pk)
    return row


def _apply(
    row: Quarantine,
    state: CaseState | None,
    action: str,
    owner: str,
    note: str,
    expires_at: datetime | None,
    commit: str,
    now: datetime,
) -> None:
    """Change ``row`` for ``action`` or raise QuarantineError, unsaved."""
    rate = state.flake_rate if state else 0.0
    if action == "accept":
        if not owner:
            raise QuarantineError(
                "owner is required to accept a quarantine: name who will fix it."
            )
        days = settings.FLAKEWATCH_QUARANTINE_DAYS
        row.state, row.owner, row.note, row.since = State.ACCEPTED, owner, note, now
        row.expires_at = expires_at or now + timedelta(days=days)
        row.accepted_flake_rate = rate
        row.release_passes, row.ready_to_release = 0, False
        row.release_needed = scoring.passes_to_call_fixed(rate)
    elif action == "dismiss":
        if row.state == State.ACCEPTED:
            raise QuarantineError(
                "The test is quarantined; release it instead of dismissing it."
            )
        row.state, row.note, row.since = State.DISMISSED, note, now
        row.dismissed_score = state.flake_score if state else 0.0
        row.expires_at = None
    elif action == "release":
        if row.state != State.ACCEPTED:
            raise QuarantineError(
                "The test is not quarantined (no accepted quarantine), so there "
                "is nothing to release."
            )
        row.state, row.note, row.since = State.RELEASED, note, now
        row.expires_at, row.ready_to_release = None, False
    else:
        if not commit:
            raise QuarantineError(
                "commit is required for fix_attempted: the commit the fix is in."
            )
        row.fix_commit, row.fix_note, row.fix_at = commit[:64], note, now
        row.fix_flake_rate = rate
        needed = scoring.passes_to_call_fixed(rate)
        row.fix_result = _fix_result(PENDING, 0, needed, rate, commit_seen=False)


def _sync_case_state(
    case: Case, project: Project, state: CaseState | None, *, quarantined: bool
) -> None:
    """Keep CaseState's flag and status in step with the quarantine."""
    if state is None:
        CaseState.objects.create(
            case=case,
            project=project,
            quarantined=quarantined,
            status=Status.QUARANTINED.value if quarantined else Status.NEW.value,
        )
        return
    state.quarantined = quarantined
    state.status = Status.QUARANTINED.value if quarantined else state.verdict
    state.save(update_fields=["quarantined", "status"])


def _bump_version(project_id: int) -> None:
    Project.objects.filter(pk=project_id).update(
        quarantine_version=F("quarantine_version") + 1
    )


# --- Suggestions and judgements after each analysis batch ---------------------


def suggestion_reason(
    evidence: list[dict[str, Any]], *, events: int, rate: float, runs: int
) -> str:
    """Say why a test is suggested, in words checked against its evidence.

    ``events`` and ``rate`` are its verdict's flake events and rate (events
    over the episode's runs), ``evidence`` the verdict's newest evidence.
    """
    total = round(events / rate) if rate > 0 else runs
    kinds = Counter(entry.get("kind") for entry in evidence)
    commits = len({entry.get("commit") for entry in evidence})
    jobs = len({entry.get("job") for entry in evidence})
    where = f"{_count(commits, 'commit')}, {_count(jobs, 'job')}"
    if len(evidence) < events:
        where = f"the newest {len(evidence)}: {where}"
    described = [(k, n) for k, n in kinds.items() if k in _EVIDENCE_WORDS]
    if len(described) == 1:
        what = _EVIDENCE_WORDS[described[0][0]]
        return f"{what} in {events} of its last {total} runs ({where})"
    parts = "; ".join(f"{_EVIDENCE_WORDS[k]} {n}x" for k, n in described)
    return f"flaked in {events} of its last {total} runs: {parts} ({where})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def refresh_after_batch(
    project: Project, case_ids: Iterable[int], *, visible: Q | None = None
) -> None:
    """Refresh the quarantine rows of these tests after their verdicts changed.

    Suggests, withdraws and re-suggests by the rules above, and re-judges
    accepted quarantines (ready to release) and fix attempts. Set-based over
    the tests: a fixed number of statements whatever their number, plus one
    read of the raw results of those under quarantine or a fix attempt.
    ``visible`` limits the uploads read (a replay sees only earlier ones).
    The caller owns the transaction.
    """
    ids = list(case_ids)
    for chunk in db.id_chunks(ids):  # a batch can hold 100,000 tests
        _refresh_tests(project, chunk, visible)


def _refresh_tests(project: Project, ids: Sequence[int], visible: Q | None) -> None:
    """Refresh the quarantine rows of ``ids``, as ``refresh_after_batch``."""
    threshold = settings.FLAKEWATCH_QUARANTINE_SUGGEST_SCORE
    margin = settings.FLAKEWATCH_QUARANTINE_RESUGGEST_MARGIN
    rows = {q.case_id: q for q in Quarantine.objects.filter(case_id__in=ids)}
    # Only tests that could change: the flaky ones above the threshold, and
    # those that already have a row.
    states = {
        s.case_id: s
        for s in CaseState.objects.filter(case_id__in=ids).filter(
            Q(verdict=Status.FLAKY, flake_score__gte=threshold)
            | Q(case_id__in=list(rows))
        )
    }
    now = timezone.now()
    created: list[Quarantine] = []
    changed: list[Quarantine] = []
    dropped: list[Quarantine] = []
    events: list[QuarantineEvent] = []
    for case_id, state in states.items():
        row = rows.get(case_id)
        before = row.state if row else ""
        step = _transition(row, state, threshold, margin)
        if step is None:
            continue
        row = row or Quarantine(case_id=case_id, project=project)
        if step == "reason":  # a new reason is no change of state
            row.reason = _reason_of(state)
            changed.append(row)
            continue
        if step == "suggest":
            _suggest(row, state, now)
            (changed if before else created).append(row)
        else:
            row.state = NONE
            dropped.append(row)
        events.append(
            QuarantineEvent(
                project=project,
                case_id=case_id,
                at=now,
                action=step,
                actor=SYSTEM,
                note=row.reason if step == "suggest" else "no longer flaky",
                before=before,
                after=row.state,
            )
        )
    judged = _judge_runs(
        [r for r in rows.values() if r.state == State.ACCEPTED or r.fix_commit],
        project,
        visible,
    )
    changed.extend(r for r in judged if r not in changed and r not in created)
    _save(created, changed, dropped)
    QuarantineEvent.objects.bulk_create(events)
    if created or changed or dropped:
        _bump_version(project.pk)


def _transition(
    row: Quarantine | None, state: CaseState, threshold: float, margin: float
) -> str | None:
    """Return what the new verdict does to a row: suggest, withdraw, reason."""
    flaky = state.verdict == Status.FLAKY and state.flake_score >= threshold
    if row is None or row.state in (State.RELEASED, NONE):
        return "suggest" if flaky else None
    if row.state == State.SUGGESTED:
        if state.verdict != Status.FLAKY:
            return "withdraw"
        return "reason" if _reason_of(state) != row.reason else None
    if row.state == State.DISMISSED:
        floor = max(threshold, (row.dismissed_score or 0.0) + margin)
        return "suggest" if flaky and state.flake_score >= floor else None
    return None


def _suggest(row: Quarantine, state: CaseState, now: datetime) -> None:
    row.state, row.since, row.reason = State.SUGGESTED, now, _reason_of(state)
    row.owner, row.note, row.expires_at = "", "", None


def _reason_of(state: CaseState) -> str:
    return suggestion_reason(
        state.evidence or [],
        events=state.flake_events,
        rate=state.flake_rate,
        runs=state.runs,
    )


def _save(
    created: list[Quarantine], changed: list[Quarantine], dropped: list[Quarantine]
) -> None:
    Quarantine.objects.bulk_create(created)
    keep = [r for r in dropped if r.fix_commit]  # kept for the fix attempt
    gone = [r.case_id for r in dropped if not r.fix_commit]
    Quarantine.objects.filter(case_id__in=gone).delete()
    fields = [
        f.name
        for f in Quarantine._meta.concrete_fields
        if not f.primary_key and f.name != "project"
    ]
    Quarantine.objects.bulk_update([*changed, *keep], fields)


def _judge_runs(
    rows: list[Quarantine], project: Project, visible: Q | None
) -> list[Quarantine]:
    """Re-judge release readiness and fix attempts; return the rows changed."""
    if not rows:
        return []
    starts = {r.case_id: _start_of(r) for r in rows}
    runs = _default_branch_runs(project, starts, visible)
    signatures = _signatures_before(project, starts)
    changed = []
    for row in rows:
        old = (row.release_passes, row.ready_to_release, row.fix_result)
        history = runs.get(row.case_id, [])
        if row.state == State.ACCEPTED:
            since = [r for r in history if r[0] >= row.since]
            row.release_passes = _trailing_passes(since)
            rate = row.accepted_flake_rate or 0.0
            row.release_needed = scoring.passes_to_call_fixed(rate)
            row.ready_to_release = row.release_passes >= row.release_needed
        if row.fix_commit:
            row.fix_result = _judge_fix(row, history, signatures.get(row.case_id))
        if (row.release_passes, row.ready_to_release, row.fix_result) != old:
            changed.append(row)
    return changed


def _start_of(row: Quarantine) -> datetime:
    times = [t for t in (row.since, row.fix_at) if t is not None]
    return min(times)


# A run of a test: (run_at, commit, clean, first failure's signature).
Run = tuple[datetime, str, bool, str]


def _default_branch_runs(
    project: Project, starts: dict[int, datetime], visible: Q | None
) -> dict[int, list[Run]]:
    """Each test's default-branch runs since its start, in run order."""
    results = CaseResult.objects.filter(
        case_id__in=list(starts),
        upload__project=project,
        upload__branch=project.default_branch,
        upload__run_at__gte=min(starts.values()),
    )
    if visible is not None:
        results = results.filter(upload__in=_uploads(project, visible))
    rows = results.order_by("upload__run_at", "upload_id", "retry_index").values_list(
        "case_id",
        "upload_id",
        "upload__run_at",
        "upload__commit_sha",
        "outcome",
        "message__signature",
    )
    folded: dict[tuple[int, int], list[Any]] = {}
    for case_id, upload_id, run_at, commit, outcome, signature in rows:
        run = folded.setdefault((case_id, upload_id), [run_at, commit, True, ""])
        if outcome in FAILED:
            if run[2]:
                run[3] = signature or ""
            run[2] = False
    by_case: dict[int, list[Run]] = defaultdict(list)
    for (case_id, _), run in folded.items():
        if run[0] >= starts[case_id]:
            by_case[case_id].append((run[0], run[1], run[2], run[3]))
    return by_case


def _uploads(project: Project, visible: Q) -> QuerySet[Upload, Any]:
    return Upload.objects.filter(project=project).filter(visible).values("pk")


def _signatures_before(
    project: Project, starts: dict[int, datetime]
) -> dict[int, set[str]]:
    """Return the failure signatures each test had before its start."""
    rows = (
        CaseResult.objects.filter(
            case_id__in=list(starts), upload__project=project, outcome__in=FAILED
        )
        .values_list("case_id", "upload__run_at", "message__signature")
        .distinct()
    )
    known: dict[int, set[str]] = defaultdict(set)
    for case_id, run_at, signature in rows:
        if run_at < starts[case_id]:
            known[case_id].add(signature or "")
    return known


def known_signatures(project: Project, case_ids: list[int]) -> dict[int, set[str]]:
    """Return every failure signature in each test's stored history."""
    rows = (
        CaseResult.objects.filter(
            case_id__in=case_ids, upload__project=project, outcome__in=FAILED
        )
        .values_list("case_id", "message__signature")
        .distinct()
    )
    known: dict[int, set[str]] = defaultdict(set)
    for case_id, signature in rows:
        known[case_id].add(signature or "")
    return known


def _trailing_passes(runs: list[Run]) -> int:
    passes = 0
    for run in reversed(runs):
        if not run[2]:
            break
        passes += 1
    return passes


def _judge_fix(
    row: Quarantine, history: list[Run], known: set[str] | None
) -> dict[str, Any]:
    """Judge a fix attempt from its commit's first default-branch run on."""
    rate = row.fix_flake_rate or 0.0
    needed = scoring.passes_to_call_fixed(rate)
    first = next((r for r in history if r[1] == row.fix_commit), None)
    if first is None:
        return _fix_result(PENDING, 0, needed, rate, commit_seen=False)
    after = [r for r in history if r[0] >= first[0]]
    failure = next((r for r in after if not r[2]), None)
    if failure is not None:
        result = _fix_result(NOT_HELD, 0, needed, rate, commit_seen=True)
        new = failure[3] not in (known or set())
        result.update(
            failed_at_commit=failure[1],
            signature=failure[3],
            new_signature=new,
            detail=(
                f"It failed again at commit {failure[1][:12]} with "
                + ("a new failure signature." if new else "its old failure signature.")
            ),
        )
        return result
    clean = len(after)
    state = HELD if clean >= needed else PENDING
    return _fix_result(state, clean, needed, rate, commit_seen=True)


def _fix_result(
    state: str, runs: int, needed: int, rate: float, *, commit_seen: bool
) -> dict[str, Any]:
    rule = (
        f"at its pre-fix flake rate of {rate:.1%}, {needed} clean runs in a row "
        f"(ceil(ln 0.05 / ln(1 - p))) make a still-flaky test 95% likely to "
        "have failed"
    )
    if state == HELD:
        detail = f"Held: {runs} clean runs since the fix; {rule}."
    elif state == PENDING and not commit_seen:
        detail = f"Not enough runs yet (0 of {needed}): the fix commit has not run "
        detail += "on the default branch yet."
    elif state == PENDING:
        detail = f"Not enough runs yet ({runs} of {needed}); {rule}."
    else:
        detail = "Did not hold."
    return {
        "state": state,
        "runs": runs,
        "needed": needed,
        "rate": rate,
        "detail": detail,
    }


# --- Reading the list ----------------------------------------------------------


def list_etag(project: Project, variant: str) -> str:
    """Return the list's ETag for one rendering (``variant``: the query).

    One statement. The version changes with every quarantine change; the
    number expired changes when a date passes; the team checksum when tests
    change owners (a sum, so two swaps could cancel out: the version still
    catches every quarantine change, which is what CI acts on).
    """
    now = timezone.now()
    figures = Quarantine.objects.filter(project=project, state__in=LISTED).aggregate(
        expired=Count("pk", filter=Q(state=State.ACCEPTED, expires_at__lte=now)),
        teams=Coalesce(Sum(F("case_id") * Coalesce("case__team_id", 0)), Value(0)),
    )
    version = Project.objects.filter(pk=project.pk).values_list(
        "quarantine_version", flat=True
    )
    return (
        f'"q{version.first()}-{figures["expired"]}-{figures["teams"]}-'
        f'{hashlib.blake2b(variant.encode(), digest_size=6).hexdigest()}"'
    )


def quarantine_list(
    project: Project, *, state: str | None = None, team: str | None = None
) -> list[ListItem]:
    """Return ``project``'s suggested and accepted tests, by id.

    ``state`` keeps one of them; ``team`` keeps tests of that team's slug
    ("none": tests nobody owns). One statement; read-only.
    """
    rows = Quarantine.objects.filter(project=project, state__in=LISTED)
    if state is not None:
        rows = rows.filter(state=state)
    if team == "none":
        rows = rows.filter(case__team__isnull=True)
    elif team is not None:
        rows = rows.filter(case__team__slug=team)
    now = timezone.now()
    values = rows.order_by("case_id").values(
        "case_id",
        "case__suite",
        "case__classname",
        "case__name",
        "case__file",
        "case__team__slug",
        "state",
        "reason",
        "owner",
        "since",
        "expires_at",
        "ready_to_release",
    )
    return [
        ListItem(
            id=v["case_id"],
            suite=v["case__suite"],
            classname=v["case__classname"],
            name=v["case__name"],
            file=v["case__file"],
            team=v["case__team__slug"],
            state=v["state"],
            reason=v["reason"],
            owner=v["owner"],
            since=v["since"],
            expires=v["expires_at"],
            expired=_expired(v["state"], v["expires_at"], now),
            ready_to_release=v["ready_to_release"],
        )
        for v in values
    ]


def _expired(state: str, expires_at: datetime | None, now: datetime) -> bool:
    return state == State.ACCEPTED and expires_at is not None and expires_at <= now


def quarantine_of(project: Project, case_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Return the tests API's ``quarantine`` field for each listed test.

    Tests without a listed quarantine are absent (the field is null). One
    statement; read-only.
    """
    now = timezone.now()
    rows = Quarantine.objects.filter(
        project=project, case_id__in=case_ids, state__in=LISTED
    ).values(
        "case_id",
        "state",
        "owner",
        "since",
        "expires_at",
        "ready_to_release",
        "case__state__verdict",
    )
    return {
        r["case_id"]: {
            "state": r["state"],
            # The verdict under the quarantine: is it still flaky?
            "verdict": r["case__state__verdict"] or Status.NEW.value,
            "owner": r["owner"],
            "since": r["since"],
            "expires": r["expires_at"],
            "expired": _expired(r["state"], r["expires_at"], now),
            "ready_to_release": r["ready_to_release"],
        }
        for r in rows
    }


def events_of(project: Project, case_id: int) -> list[QuarantineEvent]:
    """Return a test's quarantine trail, newest first."""
    return list(
        QuarantineEvent.objects.filter(project=project, case_id=case_id).order_by(
            "-at", "-pk"
        )
    )
