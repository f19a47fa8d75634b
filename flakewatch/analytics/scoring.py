"""Flake scores with honest uncertainty (flakiness-science.md §7).

The flake score is the 5% lower bound of the posterior flake rate under a
Beta(1, 49) prior: most tests almost never fail (a prior worth 50 runs at a 2%
base rate), so 1 failure in 3 runs scores 0.007 while 30 in 300 scores 0.065.
Ranking by a lower bound puts well-evidenced flakes first and never lets a
short lucky or unlucky streak outrank them.
"""

import functools
import math

PRIOR_ALPHA, PRIOR_BETA = 1.0, 49.0
SCORE_QUANTILE = 0.05
FIXED_CONFIDENCE = 0.95


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 3e-14
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Return the regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        + a * math.log(x) + b * math.log1p(-x)
    )  # fmt: skip
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def beta_quantile(q: float, a: float, b: float) -> float:
    """Return x with I_x(a, b) = q, by bisection (60 steps: below 1e-15)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if beta_cdf(middle, a, b) < q:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@functools.lru_cache(maxsize=65536)  # (events, runs) pairs repeat across tests
def flake_score(events: int, runs: int) -> float:
    """Return the posterior 5% lower bound of the flake rate; 0 without events."""
    if events <= 0 or runs <= 0:
        return 0.0
    events = min(events, runs)
    return beta_quantile(
        SCORE_QUANTILE, PRIOR_ALPHA + events, PRIOR_BETA + runs - events
    )


def passes_to_call_fixed(failure_rate: float, *, minimum: int = 5) -> int:
    """Return how many consecutive passes make "still flaky" unlikely.

    A test still failing at rate p passes n runs in a row with probability
    (1 - p)^n; "fixed" needs that below 1 - FIXED_CONFIDENCE (5%):
    n = ceil(ln 0.05 / ln(1 - p)). p = 30% needs 9 passes, 5% needs 59.
    """
    p = min(max(failure_rate, 0.005), 0.99)
    needed = math.ceil(math.log(1 - FIXED_CONFIDENCE) / math.log(1 - p))
    return max(needed, minimum)
