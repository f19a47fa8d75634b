"""Settings and deployment files: documented, consistent with what the suite runs."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

from support import stack

SETTINGS = stack.ROOT / "flakewatch" / "settings.py"
ENV_EXAMPLE = stack.ROOT / ".env.example"
README = stack.ROOT / "README.md"
COMPOSE = stack.ROOT / "docker-compose.yml"


def variables_settings_read() -> set[str]:
    """Names passed to ``env(...)``, ``env.bool(...)`` and the like in settings."""
    names = set()
    for node in ast.walk(ast.parse(SETTINGS.read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        is_env = (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
        )
        first = node.args[0]
        if is_env and isinstance(first, ast.Constant) and isinstance(first.value, str):
            names.add(first.value)
    return names


def variables_in_env_example() -> set[str]:
    # A commented-out line lists a variable that compose or the image sets.
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=")
    lines = ENV_EXAMPLE.read_text().splitlines()
    return {m.group(1) for line in lines if (m := pattern.match(line))}


def variables_in_readme_settings_table() -> set[str]:
    section = README.read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, re.MULTILINE))


def test_settings_read_a_real_population_of_variables():
    names = variables_settings_read()
    # Guards the parser: an empty set would make the comparisons below vacuous.
    assert {"DATABASE_URL", "DJANGO_DEBUG", "FLAKEWATCH_SWEEP_MINUTES"} <= names
    assert len(names) >= 15


def test_env_example_lists_exactly_the_variables_settings_read():
    read, listed = variables_settings_read(), variables_in_env_example()
    assert read - listed == set(), "add these to .env.example"
    assert listed - read == set(), "settings.py no longer reads these"


def test_readme_settings_table_lists_exactly_the_variables_settings_read():
    read, listed = variables_settings_read(), variables_in_readme_settings_table()
    assert read - listed == set(), "add these to README.md's Settings table"
    assert listed - read == set(), "settings.py no longer reads these"


def run_python(
    code: str, env_changes: dict[str, str | None]
) -> subprocess.CompletedProcess:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="flakewatch.settings")
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=stack.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


READ_DEBUG = "from django.conf import settings; print(settings.DEBUG)"


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "False"), ("false", "False"), ("true", "True")]
)
def test_debug_is_off_unless_set(value, expected):
    result = run_python(READ_DEBUG, {"DJANGO_DEBUG": value})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_importing_settings_creates_no_directory(tmp_path):
    data_dir = tmp_path / "var"
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.STATIC_ROOT)"
    result = run_python(code, {"FLAKEWATCH_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(data_dir / "static")
    assert not data_dir.exists()


READ_SWEEP = """
import json
from flakewatch.celery import app
app.finalize()
entry = app.conf.beat_schedule["requeue stale uploads"]
print(json.dumps({
    "type": type(entry["schedule"]).__name__,
    "minutes": sorted(entry["schedule"].minute),
    "hours": len(entry["schedule"].hour),
    "task": entry["task"],
    "expires": entry["options"]["expires"],
}))
"""


@pytest.mark.parametrize(
    ("setting", "minutes", "expires"),
    [(None, list(range(60)), 60), ("10", [0, 10, 20, 30, 40, 50], 600)],
)
def test_beat_sweeps_on_a_crontab_that_expires_with_its_period(
    setting, minutes, expires
):
    result = run_python(READ_SWEEP, {"FLAKEWATCH_SWEEP_MINUTES": setting})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "type": "crontab",
        "minutes": minutes,
        "hours": 24,
        "task": "ingest.requeue_stale_uploads",
        "expires": expires,
    }


def test_a_sweep_period_that_does_not_divide_an_hour_is_refused():
    result = run_python(READ_DEBUG, {"FLAKEWATCH_SWEEP_MINUTES": "7"})
    assert result.returncode != 0
    assert "FLAKEWATCH_SWEEP_MINUTES must divide an hour evenly" in result.stderr


# --- docker-compose.yml ---------------------------------------------------------


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def as_argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def with_bare_programs(argv: list[str]) -> list[str]:
    """The suite runs the venv's programs by path; the image has them on PATH."""
    return [Path(argv[0]).name, *argv[1:]]


def option(argv: list[str], name: str) -> str:
    for i, arg in enumerate(argv):
        if arg == name:
            return argv[i + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {argv}")


def test_every_compose_service_has_a_healthcheck():
    services = compose_services()
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    missing = [
        name
        for name, svc in services.items()
        if "test" not in svc.get("healthcheck", {})
    ]
    assert missing == []


def test_compose_worker_runs_the_suites_worker_command():
    argv = as_argv(compose_services()["worker"]["command"])
    concurrency = int(option(argv, "--concurrency"))
    assert argv == with_bare_programs(stack.worker_command(concurrency))


def test_compose_beat_runs_the_suites_beat_command():
    argv = as_argv(compose_services()["beat"]["command"])
    schedule = Path(option(argv, "-s"))
    assert argv == with_bare_programs(stack.beat_command(schedule))


def test_compose_web_migrates_then_runs_the_suites_gunicorn_command():
    shell, flag, script = as_argv(compose_services()["web"]["command"])
    assert (shell, flag) == ("sh", "-c")
    migrate, serve = (shlex.split(part) for part in script.split("&&"))
    assert migrate == ["python", "manage.py", "migrate", "--no-input"]
    bind, workers = option(serve, "--bind"), int(option(serve, "--workers"))
    assert serve == with_bare_programs(stack.gunicorn_command(bind, workers))


@pytest.mark.stack
def test_gunicorn_command_serves_health_and_uncollected_static_files(
    stack_env, tmp_path
):
    port = stack.free_port()
    env = dict(stack_env, FLAKEWATCH_DATA_DIR=str(tmp_path / "var"))
    server = stack.Process(
        stack.gunicorn_command(f"127.0.0.1:{port}", 1),
        env=env,
        log=tmp_path / "gunicorn.log",
    )
    try:
        server.wait_for_output("Booting worker", timeout=60)
        base = f"http://127.0.0.1:{port}"
        health = stack.wait_until(
            lambda: _get(f"{base}/healthz"), 30, "gunicorn to answer /healthz"
        )
        assert json.loads(health) == {"status": "ok"}
        # From the apps' finders: the image's collectstatic has not run here.
        css = _get(f"{base}/static/admin/css/base.css")
        assert css is not None and b"body" in css
    finally:
        server.kill()
    assert "No directory at" not in server.output()
    assert "Traceback" not in server.output()


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except OSError:
        return None


# --- Dependencies -----------------------------------------------------------------

LOCAL_MODULES = {"flakewatch", "ingest", "tests", "bench", "support", "manage"}


def third_party_imports() -> set[str]:
    names = set()
    for folder in ("flakewatch", "ingest", "tests", "bench", "support"):
        for path in (stack.ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - LOCAL_MODULES


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> set[str]:
    project = tomllib.loads((stack.ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {canonical(re.match(r"[A-Za-z0-9_.-]+", spec).group()) for spec in specs}


def test_every_imported_package_is_declared_in_pyproject():
    owners = importlib.metadata.packages_distributions()
    imported = third_party_imports()
    assert {"django", "redis", "yaml"} <= imported  # the walk found the imports
    undeclared = {
        module
        for module in imported
        if not {canonical(dist) for dist in owners.get(module, [])}
        & declared_distributions()
    }
    assert undeclared == set()


def test_every_declared_dependency_has_a_lower_and_an_upper_bound():
    project = tomllib.loads((stack.ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    unbounded = [s for s in specs if not re.search(r">=[^,]+,<", s)]
    assert len(specs) >= 20
    assert unbounded == []


def test_constraints_pin_every_declared_dependency():
    pinned = {
        canonical(line.split("==")[0])
        for line in (stack.ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    missing = declared_distributions() - pinned
    assert missing == set(), "refresh the pins: make constraints"


# --- Operations: retention, the nightly prune, scaling --------------------------

READ_PRUNE = """
import json
from flakewatch.celery import app
app.finalize()
entry = app.conf.beat_schedule["prune raw data"]
print(json.dumps({
    "type": type(entry["schedule"]).__name__,
    "minutes": sorted(entry["schedule"].minute),
    "hours": sorted(entry["schedule"].hour),
    "task": entry["task"],
    "expires": entry["options"]["expires"],
}))
"""


def test_beat_prunes_nightly_on_a_crontab_that_expires_before_the_next():
    result = run_python(READ_PRUNE, {})
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout.strip().splitlines()[-1])
    assert entry == {
        "type": "crontab",
        "minutes": [17],
        "hours": [3],
        "task": "flakewatch.prune_raw_data",
        "expires": 20 * 3600,
    }


def test_the_prune_task_is_registered_under_its_wire_name():
    code = (
        "import django; django.setup(); from flakewatch.celery import app; "
        "app.loader.import_default_modules(); "
        "print('flakewatch.prune_raw_data' in app.tasks)"
    )
    result = run_python(code, {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLAKEWATCH_RAW_RESULT_RETENTION_DAYS", "30"),
        ("FLAKEWATCH_RAW_RESULT_RETENTION_DAYS", "-1"),
        ("FLAKEWATCH_RAW_PAYLOAD_RETENTION_DAYS", "-1"),
    ],
)
def test_a_retention_that_would_change_answers_is_refused(name, value):
    result = run_python(READ_DEBUG, {name: value})
    assert result.returncode != 0
    assert "FLAKEWATCH_RAW_RESULT_RETENTION_DAYS 0 (keep forever)" in result.stderr


@pytest.mark.parametrize(
    ("payload", "result"), [("0", "0"), ("1", "90"), ("30", "365")]
)
def test_retention_zero_or_past_the_window_is_accepted(payload, result):
    code = "from django.conf import settings; print(settings.FLAKEWATCH_RAW_RESULT_RETENTION_DAYS)"
    answer = run_python(
        code,
        {"FLAKEWATCH_RAW_PAYLOAD_RETENTION_DAYS": payload,
         "FLAKEWATCH_RAW_RESULT_RETENTION_DAYS": result},
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == result


def test_the_minimum_result_retention_is_the_verdicts_window():
    from django.conf import settings

    from flakewatch import states

    assert settings.MIN_RAW_RESULT_RETENTION_DAYS == states.WINDOW.days


def test_compose_workers_scale_and_beat_does_not():
    services = compose_services()
    assert [n for n, s in services.items() if "container_name" in s] == []
    assert "ports" not in services["worker"]
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    # Web and every worker share the multiprocess metrics directory.
    for name in ("web", "worker"):
        svc = services[name]
        directory = svc["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert f"metrics:{directory}" in svc["volumes"]
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])


def test_dockerfile_installs_runtime_only_as_a_non_root_user():
    lines = (stack.ROOT / "Dockerfile").read_text().splitlines()
    dockerfile = "\n".join(line for line in lines if not line.startswith("#"))
    assert re.search(r"pip install .*-c constraints\.txt \.\s", dockerfile)
    assert "[dev]" not in dockerfile
    assert re.search(r"^USER flakewatch$", dockerfile, re.MULTILINE)
    user_at = dockerfile.index("USER flakewatch")
    assert dockerfile.index("collectstatic") > user_at
