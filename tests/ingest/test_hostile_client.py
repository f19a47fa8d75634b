"""A hostile or careless client against the real stack (issue #14, section 3).

gunicorn (the compose web command) and a real Celery worker, started once
for the module against the test database; every probe goes over HTTP. Each
is answered with a 4xx ``{"detail": ...}`` that stores nothing, or with an
ingest whose counts are exact; never a 5xx, and the worker's pool process
is the same one afterwards (nothing crashed it) and still takes the next
upload (nothing hung it).
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from flakewatch.models import Case, CaseResult, Upload, UploadFile
from flakewatch.tokens import issue_token
from support import stack
from tests.factories import ProjectFactory, junit_report

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

FIELDS = {"commit": "c0ffee", "branch": "main", "build": "7", "job": "unit"}
SETTLED = ("done", "failed")


class Stack:
    """The module's web server and worker."""

    def __init__(self, web: stack.Process, port: int, worker: stack.Process) -> None:
        self.web, self.port, self.worker = web, port, worker
        self.pool = stack.pool_children(worker.pid)

    def assert_healthy(self) -> None:
        assert self.web.running(), self.web.tail()
        assert self.worker.running(), self.worker.tail()
        assert stack.pool_children(self.worker.pid) == self.pool, (
            "the worker's pool process was replaced: a task crashed it\n"
            + self.worker.tail()
        )


def stack_environment() -> dict[str, str]:
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        DJANGO_SECRET_KEY="test-only-secret",
        FLAKEWATCH_REQUEUE_AFTER_SECONDS="3",
    )
    return env


@pytest.fixture(scope="module")
def real_stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    broker = settings.CELERY_BROKER_URL
    assert broker.startswith("redis://"), "the stack tests need the real Redis"
    redis.Redis.from_url(broker).flushdb()
    logs = tmp_path_factory.mktemp("hostile")
    env = stack_environment()
    processes = stack.Processes()
    try:
        port = stack.free_port()
        web = processes.add(
            stack.start_gunicorn(env=env, log=logs / "web.log", port=port)
        )
        worker = processes.add(stack.start_worker(env=env, log=logs / "worker.log"))
        yield Stack(web, port, worker)
    finally:
        processes.stop_all()


@pytest.fixture
def token(real_stack: Stack) -> str:
    project = ProjectFactory(slug=f"p{uuid.uuid4().hex[:8]}")
    return issue_token(project, scope="upload")


def multipart(
    fields: dict[str, bytes | str], files: list[tuple[bytes, bytes]]
) -> tuple[bytes, str]:
    """Encode form fields and (filename, content) files byte for byte."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        raw = value if isinstance(value, bytes) else value.encode()
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + raw
            + b"\r\n"
        )
    for filename, content in files:
        parts.append(
            f"--{boundary}\r\n".encode()
            + b'Content-Disposition: form-data; name="file"; filename="'
            + filename
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post(
    real_stack: Stack,
    token: str,
    *,
    files: list[tuple[bytes, bytes]] | None = None,
    fields: dict[str, bytes | str] | None = None,
    raw: bytes | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict]:
    """POST an upload over HTTP; return (status, JSON body)."""
    headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    if raw is None:
        body, content_type = multipart(
            FIELDS if fields is None else fields, files or []
        )
        headers.setdefault("Content-Type", content_type)
    else:
        body = raw
        headers.setdefault("Content-Type", "application/xml")
    status, answer = stack.http_request(
        real_stack.port, "POST", f"/api/v1/uploads{query}", body=body, headers=headers
    )
    assert answer, f"an empty {status} answer"
    return status, json.loads(answer)


def get_status(real_stack: Stack, token: str, upload_id: str) -> dict:
    status, answer = stack.http_request(
        real_stack.port,
        "GET",
        f"/api/v1/uploads/{upload_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 200, answer
    return json.loads(answer)


def settle(real_stack: Stack, token: str, upload_id: str) -> dict:
    """Wait until the worker has finished with the upload; return its status.

    A done upload is also waited for until analysed, so no task of this test
    is left running into the next one.
    """
    answer = real_stack.worker.wait_for(
        lambda: (
            (a := get_status(real_stack, token, upload_id))["status"] in SETTLED
            and (a["status"] == "failed" or a["analyzed"])
            and a
        ),
        120,
        f"upload {upload_id} to be processed",
    )
    real_stack.assert_healthy()
    return answer


def assert_refused(status: int, body: dict, code: int, phrase: str) -> None:
    assert status == code, body
    detail = body["detail"]
    assert phrase in detail, detail
    assert detail.endswith("."), detail
    assert Upload.objects.count() == UploadFile.objects.count() == 0
    assert CaseResult.objects.count() == 0


def report(*testcases: str, suite: str = "s") -> bytes:
    body = "".join(testcases)
    return f'<testsuite name="{suite}">{body}</testsuite>'.encode()


# --- Bounded probes ----------------------------------------------------------


def test_a_thousand_level_nested_suite_fails_with_a_clear_reason(real_stack, token):
    depth = 1000
    xml = (
        "".join(f'<testsuite name="s{i}">' for i in range(depth))
        + '<testcase classname="deep" name="t"/>'
        + "</testsuite>" * depth
    ).encode()
    status, body = post(real_stack, token, files=[(b"deep.xml", xml)])
    assert status == 202, body
    answer = settle(real_stack, token, body["id"])
    # libxml2's depth bound stays (lifting it lifts every other bound too).
    assert answer["status"] == "failed"
    assert answer["errors"] == [
        "deep.xml: Elements are nested more than 256 levels deep, which no "
        "JUnit XML writer does; upload the report as the test runner wrote it."
    ]
    assert CaseResult.objects.count() == Case.objects.count() == 0


def test_two_hundred_thousand_attributes_on_one_element(real_stack, token):
    attributes = " ".join(f'a{i}="x"' for i in range(200_000))
    xml = report(f'<testcase classname="c" name="wide" {attributes}/>')
    status, body = post(real_stack, token, files=[(b"wide.xml", xml)])
    assert status == 202, body
    answer = settle(real_stack, token, body["id"])
    assert (answer["status"], answer["tests"]) == ("done", 1), answer
    assert Case.objects.get().name == "wide"


def test_a_one_megabyte_test_name_is_stored_whole(real_stack, token):
    name = "n" * 1_048_576
    xml = report(f'<testcase classname="c" name="{name}"/>', '<testcase name="b"/>')
    status, body = post(real_stack, token, files=[(b"long.xml", xml)])
    assert status == 202, body
    answer = settle(real_stack, token, body["id"])
    assert (answer["status"], answer["tests"]) == ("done", 2), answer
    assert sorted(len(n) for n in Case.objects.values_list("name", flat=True)) == [
        1,
        1_048_576,
    ]


def test_five_thousand_files_in_one_upload_are_refused(real_stack, token):
    files = [(f"r{i}.xml".encode(), report()) for i in range(5000)]
    status, body = post(real_stack, token, files=files)
    assert_refused(status, body, 400, "Too many files")


def test_file_names_with_parent_paths_and_nul_keep_only_a_name(real_stack, token):
    files = [
        (b"../../etc/passwd.xml", report('<testcase name="a"/>')),
        (b"..\\..\\x\x00y.xml", report('<testcase name="b"/>')),
    ]
    status, body = post(real_stack, token, files=files)
    assert status == 202, body
    answer = settle(real_stack, token, body["id"])
    assert (answer["status"], answer["tests"]) == ("done", 2), answer
    for filename in UploadFile.objects.values_list("filename", flat=True):
        assert "/" not in filename and "\\" not in filename, filename
        assert "\x00" not in filename and ".." not in filename, filename


@pytest.mark.parametrize("field", ["commit", "branch", "job"])
@pytest.mark.parametrize(
    "value", [b"\xff\xfe\xc3(", b"main\x00evil"], ids=["bad-utf8", "nul"]
)
def test_invalid_utf8_or_nul_in_a_field(real_stack, token, field, value):
    fields = {**FIELDS, field: value}
    files = [(b"junit.xml", report('<testcase name="a"/>'))]
    status, body = post(real_stack, token, fields=fields, files=files)
    if status == 202:  # undecodable bytes read as replacement characters
        assert b"\x00" not in value
        answer = settle(real_stack, token, body["id"])
        assert (answer["status"], answer["tests"]) == ("done", 1), answer
        attribute = "commit_sha" if field == "commit" else field
        stored = getattr(Upload.objects.get(), attribute)
        assert "\ufffd" in stored
    else:
        assert_refused(status, body, 400, field)


@pytest.mark.parametrize("field", ["commit", "branch", "job"])
def test_invalid_utf8_or_nul_in_a_query_parameter(real_stack, token, field):
    query = "&".join(
        f"{k}={'%00' if k == field else v}" for k, v in FIELDS.items()
    ).replace("%00", "%FF%00")
    status, body = post(
        real_stack, token, raw=report('<testcase name="a"/>'), query=f"?{query}"
    )
    assert_refused(status, body, 400, field)


def test_a_ten_thousand_character_build_id_is_refused(real_stack, token):
    fields = {**FIELDS, "build": "b" * 10_000}
    files = [(b"junit.xml", report('<testcase name="a"/>'))]
    status, body = post(real_stack, token, fields=fields, files=files)
    assert_refused(status, body, 400, "build is longer than 255 characters")


@pytest.mark.parametrize("attempt", ["-1", "99999999999999999999", "1e3", "two"])
def test_an_attempt_out_of_range_or_not_a_number_is_refused(real_stack, token, attempt):
    fields = {**FIELDS, "attempt": attempt}
    files = [(b"junit.xml", report('<testcase name="a"/>'))]
    status, body = post(real_stack, token, fields=fields, files=files)
    assert_refused(status, body, 400, "attempt must be a whole number")


@pytest.mark.parametrize(
    "started_at", ["yesterday", "2026-13-45T99:99:99Z", "9" * 400, "0000-00-00"]
)
def test_garbage_started_at_is_refused(real_stack, token, started_at):
    fields = {**FIELDS, "started_at": started_at}
    files = [(b"junit.xml", report('<testcase name="a"/>'))]
    status, body = post(real_stack, token, fields=fields, files=files)
    assert_refused(status, body, 400, "started_at must be an ISO 8601 time")


def test_a_gz_file_that_is_plain_xml_is_read_as_plain(real_stack, token):
    files = [(b"junit.xml.gz", report('<testcase name="a"/>'))]
    status, body = post(real_stack, token, files=files)
    assert status == 202, body
    answer = settle(real_stack, token, body["id"])
    assert (answer["status"], answer["tests"]) == ("done", 1), answer


def test_a_gz_file_that_is_not_gzip_is_refused(real_stack, token):
    files = [(b"junit.xml.gz", b"\x1f\x8b" + os.urandom(2000))]
    status, body = post(real_stack, token, files=files)
    assert_refused(status, body, 400, "junit.xml.gz looks gzip-compressed")


def test_gzip_content_encoding_over_a_plain_body_is_read_as_plain(real_stack, token):
    query = "?" + "&".join(f"{k}={v}" for k, v in FIELDS.items())
    status, body = post(
        real_stack,
        token,
        raw=report('<testcase name="a"/>', '<testcase name="b"/>'),
        query=query,
        headers={"Content-Encoding": "gzip"},
    )
    assert status == 202, body
    answer = settle(real_stack, token, body["id"])
    assert (answer["status"], answer["tests"]) == ("done", 2), answer


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_report_is_read(real_stack, token, codec):
    text = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        + report(
            '<testcase name="caf\u00e9"/>', '<testcase name="b"><failure/></testcase>'
        ).decode()
    )
    data = text.encode(codec)
    if codec != "utf-16":  # a BOM, as editors and PowerShell write one
        data = ("\ufeff" + text).encode(codec)
    status, body = post(real_stack, token, files=[(b"utf16.xml", data)])
    assert status == 202, body
    answer = settle(real_stack, token, body["id"])
    assert (answer["status"], answer["tests"], answer["failures"]) == ("done", 2, 1)
    assert set(Case.objects.values_list("name", flat=True)) == {"caf\u00e9", "b"}


def test_an_xinclude_element_is_not_followed(real_stack, token, tmp_path: Path):
    secret = tmp_path / "secret.xml"
    secret.write_text('<testcase name="leaked"/>')
    xml = report(
        '<testcase name="a"/>',
        '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
        f'href="file://{secret}" parse="xml"/>',
        '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
        f'href="{secret}" parse="text"/>',
    )
    status, body = post(real_stack, token, files=[(b"xi.xml", xml)])
    assert status == 202, body
    answer = settle(real_stack, token, body["id"])
    assert (answer["status"], answer["tests"]) == ("done", 1), answer
    assert list(Case.objects.values_list("name", flat=True)) == ["a"]


def test_processing_instructions_are_ignored(real_stack, token):
    xml = (
        b'<?xml version="1.0"?><?xml-stylesheet href="http://127.0.0.1:9/x.xsl"?>'
        b'<testsuite name="s"><?php system("id"); ?><testcase name="a">'
        b'<?pi inside?></testcase><testcase name="b"/></testsuite><?after?>'
    )
    status, body = post(real_stack, token, files=[(b"pi.xml", xml)])
    assert status == 202, body
    answer = settle(real_stack, token, body["id"])
    assert (answer["status"], answer["tests"]) == ("done", 2), answer


# --- Sixteen clients at once -------------------------------------------------


def test_sixteen_clients_posting_the_same_report_at_once_make_one_upload(
    real_stack, token
):
    clients = 16
    xml = junit_report(200, failing={3, 30})
    barrier = threading.Barrier(clients, timeout=30)
    answers: list[tuple[int, dict]] = []
    problems: list[BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            body, content_type = multipart(FIELDS, [(b"junit.xml", xml)])
            headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
            barrier.wait()  # every client's request is ready: send together
            status, answer = stack.http_request(
                real_stack.port, "POST", "/api/v1/uploads", body=body, headers=headers
            )
            with lock:
                answers.append((status, json.loads(answer)))
        except BaseException as exc:  # reported below, in the test's thread
            with lock:
                problems.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not problems, problems
    assert len(answers) == clients
    statuses = sorted(status for status, _ in answers)
    assert statuses.count(202) == 1 and statuses.count(200) == clients - 1, statuses
    assert len({answer["id"] for _, answer in answers}) == 1
    upload_id = answers[0][1]["id"]
    answer = settle(real_stack, token, upload_id)
    assert (answer["tests"], answer["failures"]) == (200, 2)
    assert Upload.objects.count() == 1
    assert CaseResult.objects.count() == 200
    assert Case.objects.count() == 200
    runs = list(Case.objects.values_list("state__runs", flat=True))
    assert runs == [1] * 200


def test_the_stack_still_ingests_after_the_probes(real_stack, token):
    files = [(b"junit.xml.gz", gzip.compress(junit_report(25, failing={2})))]
    status, body = post(real_stack, token, files=files)
    assert status == 202, body
    answer = settle(real_stack, token, body["id"])
    assert (answer["status"], answer["tests"], answer["failures"]) == ("done", 25, 1)
