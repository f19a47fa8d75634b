"""/metrics scraped from a real gunicorn while a real worker does the work."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import stack
from tests.factories import junit_report
from tests.test_pipeline import curl_upload, wait_for_status

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Scrape /metrics; return {(sample name, sorted labels): value}."""
    status, body = stack.http_request(port, "GET", "/metrics", timeout=10)
    assert status == 200, body
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def ingest_age(samples) -> float:
    return samples[
        ("flakewatch_oldest_waiting_upload_age_seconds", (("stage", "ingest"),))
    ]


def test_a_stuck_upload_shows_in_metrics_until_a_worker_takes_it(
    stack_env, upload_token, start_worker, processes, tmp_path
):
    env = {**stack_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    (tmp_path / "prometheus").mkdir()
    port = stack.free_port()
    processes.add(stack.start_gunicorn(env=env, log=tmp_path / "web.log", port=port))
    report = tmp_path / "junit.xml"
    report.write_bytes(junit_report(25, failing={3}))

    # No worker yet: the upload is queued and stays queued.
    _, body = curl_upload(f"http://127.0.0.1:{port}", upload_token, report)
    first = scrape(port)
    assert first[("flakewatch_uploads", (("status", "queued"),))] == 1
    assert (
        first[("flakewatch_queue_depth", (("priority", "0"), ("queue", "ingest")))] == 1
    )
    assert first[("flakewatch_broker_up", ())] == 1
    assert first[("flakewatch_database_up", ())] == 1
    assert first[("flakewatch_ingest_duration_seconds_count", ())] == 0
    # The age of the stuck upload grows from one scrape to the next.
    stack.wait_until(
        lambda: ingest_age(scrape(port)) > ingest_age(first) + 1,
        30,
        "the stuck upload's age to grow",
    )

    start_worker(env)
    upload_id = int(body["id"])
    wait_for_status(upload_id, "done", timeout=60)
    done = stack.wait_until(
        lambda: (s := scrape(port))[
            ("flakewatch_oldest_waiting_upload_age_seconds", (("stage", "analysis"),))
        ] == 0 and s[("flakewatch_analysis_duration_seconds_count", ())] >= 1 and s,
        60,
        "the analysis to finish and show in /metrics",
    )  # fmt: skip
    assert ingest_age(done) == 0
    assert done[("flakewatch_uploads", (("status", "queued"),))] == 0
    assert done[("flakewatch_uploads", (("status", "done"),))] == 1
    assert done[("flakewatch_executions_ingested_total", ())] == 25
    assert (
        done[("flakewatch_queue_depth", (("priority", "0"), ("queue", "ingest")))] == 0
    )
    # Counted in the worker's process, summed by the web's scrape.
    assert done[("flakewatch_ingest_duration_seconds_count", ())] == 1
    assert done[("flakewatch_ingest_duration_seconds_sum", ())] > 0
    assert done[("flakewatch_digests_sent_total", ())] == 0
