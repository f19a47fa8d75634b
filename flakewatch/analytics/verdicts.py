"""The verdict on one test from its failures and the commits it ran on.

Evidence of flakiness, strongest first (README, "How verdicts are made"):

- in-run: failed then passed within one run (Surefire flakyFailure,
  pytest-rerunfailures, gotestsum --rerun-fails);
- same-commit: failed and passed on the same commit in the same job (a CI
  re-run, or another build of that commit);
- isolated: a default-branch failure with passes on the job's commits right
  before and right after it.

Not evidence: a failure in one job while another job passes on the same
commit (a configuration difference); failures only on a feature branch (the
branch's own breakage), even when a re-run or in-run retry there passed,
unless the test also shows evidence on the default branch; failures that
many tests share in one run (an incident, counted apart: runs.incident_cases).
A re-run that fails again is more breakage, not flakiness. Consecutive failures without any of the above are
hard failures: BROKEN_MIN_RUNS of them at the newest end of a job's default
branch history make the test broken since the first of them.

Hysteresis: a flaky episode starts with ENTER_EVENTS pieces of evidence (one
is not enough), and ends only after the run of passes that makes "still
flaky" unlikely at the episode's own failure rate
(scoring.passes_to_call_fixed). A test whose episode ended is fixed. The walk
is over the history itself, so the verdict does not depend on when it was
computed.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime

from flakewatch.analytics import scoring
from flakewatch.outcomes import Status

ENTER_EVENTS = 2
# flaky_since: the flake would have shown in the runs before the range with
# this probability, at the episode's rate.
FLAKY_SINCE_PROBABILITY = scoring.FIXED_CONFIDENCE
MAX_INCIDENT_EVIDENCE = 5
BROKEN_MIN_RUNS = 3
PASSES_AFTER_BROKEN = 3
MIN_RUNS_TO_JUDGE = 5
MAX_EVIDENCE = 20

IN_RUN, SAME_COMMIT, ISOLATED = "in-run rerun", "same-commit rerun", "isolated failure"
EVIDENCE_KINDS = (IN_RUN, SAME_COMMIT, ISOLATED)
HARD, PENDING, INCIDENT, BRANCH = "hard", "pending", "incident", "branch only"


# eq=False: cells are keyed by identity (one per commit and job, as in their
# table), which hashes in a fraction of the time of eight fields.
@dataclass(frozen=True, eq=False)
class Cell:
    """A test's runs on one commit in one job where it failed at least once."""

    commit: str
    job: str
    on_default_branch: bool
    ran_at: datetime
    failed_runs: int
    passed_runs: int
    incident_failures: int
    in_run_flake: bool
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Position:
    """A default-branch commit of a job, in the job's run order."""

    ran_at: datetime
    commit: str


@dataclass(frozen=True)
class Verdict:
    """The verdict on a test, its flake figures and the evidence shown."""

    status: Status
    flake_events: int = 0
    flake_rate: float = 0.0
    flake_score: float = 0.0
    first_flaky_commit: str = ""
    broken_since_commit: str = ""
    evidence: list[dict[str, object]] = field(default_factory=list)
    flaky_since: str = ""


class Timeline:
    """One job's default-branch commits in run order, indexed for the walk.

    A verdict asks, for each of its failures, where that commit stands and
    how many runs passed in between: with a long history (a test broken for
    thousands of commits) scanning the list each time made judging one test
    quadratic. Positions are sorted by time, so counts between two times are
    two bisections over prefix sums.
    """

    __slots__ = ("_passed_before", "commits", "index_of", "times")

    def __init__(self, positions: list[Position]) -> None:
        self.commits = [p.commit for p in positions]
        self.times = [p.ran_at for p in positions]
        self.index_of: dict[str, int] = {}
        for index, commit in enumerate(self.commits):
            self.index_of.setdefault(commit, index)  # a commit's first run
        self._passed_before: list[int] = []

    def count_failed(self, failed_commits: set[str]) -> None:
        """Index the runs that did not fail, for ``passes_between``."""
        prefix = [0] * (len(self.commits) + 1)
        for index, commit in enumerate(self.commits):
            prefix[index + 1] = prefix[index] + (commit not in failed_commits)
        self._passed_before = prefix

    def passes_between(self, start: datetime | None, end: datetime | None) -> int:
        """Count the runs strictly between two times that did not fail."""
        low = 0 if start is None else bisect_right(self.times, start)
        high = len(self.times) if end is None else bisect_left(self.times, end)
        return max(self._passed_before[high] - self._passed_before[low], 0)

    def runs_between(self, start: datetime, end: datetime | None) -> int:
        """Count the runs from ``start`` to ``end``, both included."""
        low = bisect_left(self.times, start)
        high = len(self.times) if end is None else bisect_right(self.times, end)
        return max(high - low, 0)


def classify(cells: list[Cell], jobs: dict[str, Timeline]) -> dict[Cell, str]:
    """Return the kind of each cell: an evidence kind, hard, pending, ..."""
    by_key = {(c.job, c.commit): c for c in cells}
    kinds: dict[Cell, str] = {}
    for cell in cells:
        if cell.failed_runs <= cell.incident_failures:
            kinds[cell] = INCIDENT
        elif cell.in_run_flake:
            kinds[cell] = IN_RUN
        elif cell.passed_runs > 0:
            kinds[cell] = SAME_COMMIT
        elif not cell.on_default_branch:
            kinds[cell] = BRANCH
        else:
            kinds[cell] = _isolation(cell, jobs.get(cell.job), by_key)
    # A branch's passes beside its failures count only for a test that flakes
    # on the default branch too: a branch broken by its own change passes
    # again once the change is reverted or re-pushed, on the same commit
    # when CI re-runs after a fix elsewhere (a cache, a dependency pin).
    on_default = any(c.on_default_branch and kinds[c] in EVIDENCE_KINDS for c in cells)
    if not on_default:
        for cell in cells:
            if not cell.on_default_branch and kinds[cell] in EVIDENCE_KINDS:
                kinds[cell] = BRANCH
    return kinds


def _isolation(
    cell: Cell, timeline: Timeline | None, by_key: dict[tuple[str, str], Cell]
) -> str:
    index = timeline.index_of.get(cell.commit) if timeline else None
    if timeline is None or index is None:
        return HARD
    before = _neighbour(cell.job, timeline.commits, index, -1, by_key)
    after = _neighbour(cell.job, timeline.commits, index, +1, by_key)
    if after is None:
        return PENDING  # the next run decides
    return ISOLATED if before == "pass" and after == "pass" else HARD


def _neighbour(
    job: str,
    commits: list[str],
    index: int,
    step: int,
    by_key: dict[tuple[str, str], Cell],
) -> str | None:
    """Return 'pass' or 'fail' for the nearest run that is not an incident.

    None at the end of the job's commits.
    """
    index += step
    while 0 <= index < len(commits):
        other = by_key.get((job, commits[index]))
        if other is None:
            return "pass"
        if other.failed_runs > other.incident_failures:
            return "fail"
        index += step  # an incident says nothing about the test
    return None


def _passes_between(
    jobs: dict[str, Timeline], start: datetime | None, end: datetime | None
) -> int:
    """Count default-branch runs strictly between two times that did not fail."""
    return sum(timeline.passes_between(start, end) for timeline in jobs.values())


def _runs_between(
    jobs: dict[str, Timeline], start: datetime, end: datetime | None
) -> int:
    return sum(timeline.runs_between(start, end) for timeline in jobs.values())


def _broken_streaks(
    cells: list[Cell], kinds: dict[Cell, str], jobs: dict[str, Timeline]
) -> tuple[str, bool]:
    """Return (broken_since_commit or '', whether a broken streak has ended)."""
    by_key = {(c.job, c.commit): c for c in cells}
    broken_since, ended = "", False
    for job, timeline in jobs.items():
        streak: list[str] = []
        passes_after = 0
        for commit in timeline.commits:
            cell = by_key.get((job, commit))
            kind = kinds.get(cell) if cell else None
            if kind == INCIDENT:
                continue
            if kind in (HARD, PENDING):
                if passes_after and len(streak) >= BROKEN_MIN_RUNS:
                    ended = ended or passes_after >= PASSES_AFTER_BROKEN
                if passes_after:
                    streak, passes_after = [], 0
                streak.append(commit)
            else:
                passes_after += 1
        if len(streak) >= BROKEN_MIN_RUNS and not passes_after:
            broken_since = broken_since or streak[0]
        elif len(streak) >= BROKEN_MIN_RUNS and passes_after >= PASSES_AFTER_BROKEN:
            ended = True
    return broken_since, ended


def _evidence_entry(cell: Cell, kind: str) -> dict[str, object]:
    return {
        "kind": kind,
        "commit": cell.commit,
        "job": cell.job,
        "default_branch": cell.on_default_branch,
        "ran_at": cell.ran_at.isoformat(),
        "failed_runs": cell.failed_runs,
        "passed_runs": cell.passed_runs,
        **cell.details,
    }


# One walk read top to bottom: its steps share a dozen locals, so splitting it
# would pass them all around.
def judge(  # noqa: C901
    cells: list[Cell],
    jobs: dict[str, list[Position]],
    *,
    runs: int,
    quarantined: bool = False,
) -> Verdict:
    """Return the verdict on a test.

    ``cells`` are its failures within the window; ``jobs`` maps each job it
    failed in to that job's default-branch commits up to the test's newest
    run, oldest first; ``runs`` counts all its runs.
    """
    if not cells:
        status = Status.NEW if runs < MIN_RUNS_TO_JUDGE else Status.HEALTHY
        return Verdict(status=Status.QUARANTINED if quarantined else status)

    timelines = {job: Timeline(positions) for job, positions in jobs.items()}
    kinds = classify(cells, timelines)
    failed: dict[str, set[str]] = {job: set() for job in timelines}
    for cell in cells:
        if kinds[cell] != INCIDENT and cell.job in failed:
            failed[cell.job].add(cell.commit)
    for job, timeline in timelines.items():
        timeline.count_failed(failed[job])
    events = sorted(
        (c for c in cells if kinds[c] in EVIDENCE_KINDS),
        key=lambda c: (c.ran_at, c.commit),
    )
    broken_since, broken_ended = _broken_streaks(cells, kinds, timelines)

    # Walk the evidence in time order; a lone failure followed by a long run
    # of passes is dropped, anything more forms the episode.
    episode: list[Cell] = []
    for event in events:
        if episode:
            passes = _passes_between(timelines, episode[-1].ran_at, event.ran_at)
            # A gap ends an episode only before it became flaky: once flaky, a
            # new failure after a long gap is the same flakiness recurring,
            # and only the trailing run of passes can call it fixed.
            if len(episode) < ENTER_EVENTS and passes >= _needed(timelines, episode):
                episode = []
        episode.append(event)
    open_episode = bool(episode)
    fixed = False
    if episode:
        trailing = _passes_between(timelines, episode[-1].ran_at, None)
        if trailing >= _needed(timelines, episode):
            fixed = len(episode) >= ENTER_EVENTS
            open_episode = False

    window_runs = max(
        runs, _runs_between(timelines, min(c.ran_at for c in cells), None), 1
    )
    if open_episode and len(episode) >= ENTER_EVENTS:
        status = Status.FLAKY
        start = episode[0].ran_at
        episode_runs = max(_runs_between(timelines, start, None), len(episode))
        k, n = len(episode), episode_runs
        default_events = [c for c in episode if c.on_default_branch]
        first = _episode_start(
            cells, kinds, timelines, (default_events or episode)[0], episode
        )
        first_flaky_commit = first.commit
        flaky_since = _flaky_since(timelines, first, _episode_rate(timelines, episode))
        shown = episode
    else:
        status = Status.FIXED if (fixed or broken_ended) else Status.HEALTHY
        k, n = len(events), window_runs
        first_flaky_commit = ""
        flaky_since = ""
        shown = events
    if broken_since:
        status = Status.BROKEN
    elif status == Status.HEALTHY and runs < MIN_RUNS_TO_JUDGE:
        status = Status.NEW
    if quarantined:
        status = Status.QUARANTINED

    evidence = [_evidence_entry(c, kinds[c]) for c in shown[-MAX_EVIDENCE:]]
    incidents = [c for c in cells if kinds[c] == INCIDENT]
    evidence += [
        _evidence_entry(c, INCIDENT) for c in incidents[-MAX_INCIDENT_EVIDENCE:]
    ]
    if broken_since:
        streak_cells = [c for c in cells if kinds[c] in (HARD, PENDING)]
        evidence = [
            _evidence_entry(c, "hard failure") for c in streak_cells[-MAX_EVIDENCE:]
        ]
    return Verdict(
        status=status,
        flake_events=k,
        flake_rate=min(k / n, 1.0) if n else 0.0,
        flake_score=scoring.flake_score(k, n),
        first_flaky_commit=first_flaky_commit
        if status in (Status.FLAKY, Status.QUARANTINED)
        else "",
        broken_since_commit=broken_since,
        evidence=evidence,
        flaky_since=flaky_since if status in (Status.FLAKY, Status.QUARANTINED) else "",
    )


def _episode_rate(jobs: dict[str, Timeline], episode: list[Cell]) -> float:
    """Return the episode's failure rate, the posterior mean under the prior.

    So one lone failure (no rate to speak of) is taken as a 4% flake, not a
    100% one.
    """
    runs = max(_runs_between(jobs, episode[0].ran_at, episode[-1].ran_at), len(episode))
    return (scoring.PRIOR_ALPHA + len(episode)) / (
        scoring.PRIOR_ALPHA + scoring.PRIOR_BETA + runs
    )


def _needed(jobs: dict[str, Timeline], episode: list[Cell]) -> int:
    """Return the passes that end an episode, at its own failure rate."""
    return scoring.passes_to_call_fixed(_episode_rate(jobs, episode))


def _episode_start(
    cells: list[Cell],
    kinds: dict[Cell, str],
    jobs: dict[str, Timeline],
    first_event: Cell,
    episode: list[Cell],
) -> Cell:
    """Return the earliest failure of the episode that ``first_event`` opens.

    Failures that are not evidence by themselves (two flaky failures in a
    row read as hard ones) belong to the episode when no run of passes long
    enough to end it lies between them and its first evidence.
    """
    needed = _needed(jobs, episode)
    earlier = sorted(
        (
            c
            for c in cells
            if c.on_default_branch
            and kinds[c] not in (INCIDENT, BRANCH)
            and c.ran_at < first_event.ran_at
        ),
        key=lambda c: (c.ran_at, c.commit),
    )
    start = first_event
    for cell in reversed(earlier):
        if _passes_between(jobs, cell.ran_at, start.ran_at) >= needed:
            break
        start = cell
    return start


def _flaky_since(jobs: dict[str, Timeline], first: Cell, rate: float) -> str:
    """Return the commit before which the episode most likely had not begun.

    A flake failing at ``rate`` shows in n runs with probability
    1 - (1 - rate)^n; walking back from the episode's first failure over the
    default-branch runs of the jobs it failed in, the range opens at the
    n-th run, n the smallest giving FLAKY_SINCE_PROBABILITY (a 1% flake
    needs 299 runs, a 30% one 9). With fewer runs on record the range opens
    at the oldest one. So the true start lies after the returned commit and
    at or before the first failure with about that probability.
    """
    needed = scoring.passes_to_call_fixed(rate, minimum=1)
    before = sorted(
        (
            (ran_at, commit)
            for timeline in jobs.values()
            for ran_at, commit in zip(timeline.times, timeline.commits, strict=True)
            if ran_at < first.ran_at
        ),
        reverse=True,
    )
    if not before:
        return first.commit
    return before[min(needed, len(before)) - 1][1]
