"""JSON log lines from a real worker carry the upload they are about."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from flakewatch import logs
from flakewatch.models import Upload
from support import stack
from tests.factories import junit_report
from tests.test_pipeline import curl_upload

PIPELINE_LOGGERS = ("ingest.", "flakewatch.", "celery.app.trace")


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_workers_json_log_names_the_upload_on_every_pipeline_line(
    live_server, upload_token, stack_env, start_worker, tmp_path
):
    worker = start_worker({**stack_env, "FLAKEWATCH_LOG_FORMAT": "json"})
    report = tmp_path / "junit.xml"
    report.write_bytes(junit_report(10, failing={2}))
    _, body = curl_upload(live_server.url, upload_token, report)
    upload_id = int(body["id"])
    stack.wait_until(
        lambda: Upload.objects.filter(pk=upload_id, analyzed_at__isnull=False).exists(),
        60,
        "the upload to be analysed",
    )
    # The task's own success line is the last it writes.
    worker.wait_for_output("flakewatch.analyze_upload[", timeout=30)
    worker.wait_for(
        lambda: "succeeded" in worker.output().split("flakewatch.analyze_upload[")[-1],
        30,
        "the analysis task's success line",
    )

    lines = worker.output().splitlines()
    # Celery prints its banner before logging is set up; after it, JSON only.
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    records = [json.loads(line) for line in lines[first:] if line.strip()]
    assert {"time", "level", "logger", "message", "upload_id"} <= set(records[0])
    pipeline = [r for r in records if r["logger"].startswith(PIPELINE_LOGGERS)]
    messages = [r["message"] for r in pipeline]
    assert "upload done" in messages
    assert any("analyze_upload" in m and "succeeded" in m for m in messages)
    assert len(pipeline) >= 3
    assert [r for r in pipeline if r["upload_id"] != upload_id] == []


def test_the_filter_tags_records_inside_an_upload_context_only():
    record = logging.LogRecord("ingest.services", logging.INFO, "", 0, "m", None, None)
    with logs.upload_context(41):
        logs.UploadContextFilter().filter(record)
    assert record.upload_id == 41
    outside = logging.LogRecord("ingest.services", logging.INFO, "", 0, "m", None, None)
    logs.UploadContextFilter().filter(outside)
    assert outside.upload_id is None


def test_json_lines_keep_extras_and_exceptions():
    try:
        raise ValueError("bad report")
    except ValueError:
        record = logging.LogRecord(
            "ingest.services", logging.ERROR, "", 0, "upload %s failed", (7,),
            exc_info=sys.exc_info(),
        )  # fmt: skip
    record.upload_id = 7
    record.attempt = 2
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "upload 7 failed"
    assert (entry["upload_id"], entry["attempt"], entry["level"]) == (7, 2, "ERROR")
    assert "ValueError: bad report" in entry["exception"]
