"""Settings for flakewatch, all from environment variables.

With nothing set, flakewatch runs on its embedded default: a SQLite file under
``var/``, Celery tasks run in-process, mail printed to the console. Production
sets ``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL`` (Redis); see the
settings table in README.md.
"""

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import django_stubs_ext
import environ

django_stubs_ext.monkeypatch()  # lets code subscript ModelAdmin[...] at run time

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# Nothing here touches the disk: manage.py and wsgi.py create the SQLite file's
# folder (flakewatch/sqlite.py), and collectstatic creates STATIC_ROOT.
DATA_DIR = Path(env("FLAKEWATCH_DATA_DIR", default=str(BASE_DIR / "var")))

DEV_SECRET_KEY = "flakewatch-dev-only-not-secret"
SECRET_KEY = env("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "flakewatch",
    "ingest",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "flakewatch.static.StaticFilesMiddleware",  # WhiteNoise
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "flakewatch.urls"
WSGI_APPLICATION = "flakewatch.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

SQLITE_URL = f"sqlite:///{DATA_DIR / 'flakewatch.sqlite3'}"
DATABASES = {"default": env.db("DATABASE_URL", default=SQLITE_URL)}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", 60))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default serves a few users; a busy timeout keeps the request
    # thread and the in-process task from failing on each other's write lock.
    # IMMEDIATE: a transaction takes the write lock when it begins, so it
    # waits out the timeout; a deferred one that writes after reading is
    # refused at once ("database is locked") while another writes, as the
    # upload API was while the demo loaded.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif SECRET_KEY == DEV_SECRET_KEY and not env.bool(
    "FLAKEWATCH_ALLOW_DEV_SECRET", False
):
    raise environ.ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set when flakewatch runs on PostgreSQL."
    )

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"  # collectstatic's target (the Docker image)
# Without collectstatic (make run, tests), serve straight from the apps; the
# middleware then skips the missing STATIC_ROOT instead of warning about it.
WHITENOISE_USE_FINDERS = True
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "flakewatch.plotly_static.PlotlyFinder",  # plotly.js from the plotly package
]

# --- The pages (flakewatch/views.py) --------------------------------------------
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# Read-only pages without a login, for a trusted network only.
FLAKEWATCH_PUBLIC_PAGES = env.bool("FLAKEWATCH_PUBLIC_PAGES", default=False)

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
# One variable for flakewatch's sender; Django's DEFAULT_FROM_EMAIL (what
# every mail without its own sender uses) is set from it.
DEFAULT_FROM_EMAIL = env("FLAKEWATCH_FROM_EMAIL", default="flakewatch@localhost")
# Seconds an SMTP connect or command may take: a hung server fails one team's
# digest (retried later), never the worker.
EMAIL_TIMEOUT = env.int("FLAKEWATCH_EMAIL_TIMEOUT_SECONDS", 30)

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="memory://")
NO_BROKER = CELERY_BROKER_URL == "memory://"  # embedded default: run tasks inline
CELERY_TASK_ALWAYS_EAGER = env.bool("FLAKEWATCH_EAGER_TASKS", default=NO_BROKER)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a task killed mid-way is redelivered, not dropped
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # ...including when its process dies
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a dying worker strands one task, not four
CELERY_TASK_IGNORE_RESULT = True  # no result backend: state lives in our tables
# An upload of the maximum size ingests in seconds; the limits stop a stuck parse.
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 330
# Must exceed the longest task, or Redis redelivers a live one. A killed worker's
# task does not wait for it: the sweeper re-enqueues orphaned uploads.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    # Two priority levels (Redis: 0 is taken first): analyses run at 9, so a
    # worker ingests every waiting upload before it analyses, and the
    # analysis then takes the backlog in a few large batches.
    "priority_steps": [0, 9],
}
# A request must answer within seconds when Redis is down: no publish retry loop;
# an upload whose enqueue failed is picked up by the sweeper.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"ingest.*": {"queue": "ingest"}}  # never route at call sites
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- flakewatch ---------------------------------------------------------------
FLAKEWATCH_MAX_UPLOAD_BYTES = env.int("FLAKEWATCH_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
# Beat runs the sweeper at minute */N of every hour (flakewatch/celery.py); N
# divides 60, so sweeps are evenly spaced. The sweeper re-enqueues uploads still
# queued after FLAKEWATCH_REQUEUE_AFTER_SECONDS (a lost task) and, at once,
# those whose task could not be sent or whose worker died mid-way.
FLAKEWATCH_SWEEP_MINUTES = env.int("FLAKEWATCH_SWEEP_MINUTES", 1)
if FLAKEWATCH_SWEEP_MINUTES not in {1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60}:
    raise environ.ImproperlyConfigured(
        "FLAKEWATCH_SWEEP_MINUTES must divide an hour evenly (1, 2, 3, 4, 5, 6, "
        "10, 12, 15, 20, 30 or 60)."
    )
FLAKEWATCH_REQUEUE_AFTER_SECONDS = env.float("FLAKEWATCH_REQUEUE_AFTER_SECONDS", 120.0)
FLAKEWATCH_MAX_PROCESS_ATTEMPTS = env.int("FLAKEWATCH_MAX_PROCESS_ATTEMPTS", 5)
# A duration regression must add at least this much to a run, in ms: tiny tests
# double in time from nothing (flakewatch.analytics.durations).
FLAKEWATCH_MIN_REGRESSION_MS = env.float("FLAKEWATCH_MIN_REGRESSION_MS", 50.0)

# --- Digests and change notifications (flakewatch/digests.py, notifications.py)
# Absolute links in emails and webhook messages: the dashboard's public URL.
FLAKEWATCH_BASE_URL = env(
    "FLAKEWATCH_BASE_URL", default="http://127.0.0.1:8000"
).rstrip("/")
# The weekly digest goes out on this day at this local time, in this zone.
FLAKEWATCH_DIGEST_DAY = env("FLAKEWATCH_DIGEST_DAY", default="mon").lower()[:3]
FLAKEWATCH_DIGEST_TIME = env("FLAKEWATCH_DIGEST_TIME", default="09:00")
FLAKEWATCH_DIGEST_TIMEZONE = env("FLAKEWATCH_DIGEST_TIMEZONE", default="UTC")
# A team with nothing to report: "note" sends a short all-quiet mail, "skip"
# sends nothing.
FLAKEWATCH_DIGEST_QUIET = env("FLAKEWATCH_DIGEST_QUIET", default="note")
FLAKEWATCH_WEBHOOK_TIMEOUT_SECONDS = env.float(
    "FLAKEWATCH_WEBHOOK_TIMEOUT_SECONDS", 10.0
)
if FLAKEWATCH_DIGEST_DAY not in {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}:
    raise environ.ImproperlyConfigured(
        "FLAKEWATCH_DIGEST_DAY must be a weekday such as mon or monday."
    )
_hh, _sep, _mm = FLAKEWATCH_DIGEST_TIME.partition(":")
if not (_sep and _hh.isdigit() and _mm.isdigit() and int(_hh) < 24 and int(_mm) < 60):
    raise environ.ImproperlyConfigured(
        "FLAKEWATCH_DIGEST_TIME must be HH:MM on a 24-hour clock, such as 09:00."
    )
try:
    ZoneInfo(FLAKEWATCH_DIGEST_TIMEZONE)
except (ZoneInfoNotFoundError, ValueError) as _exc:
    raise environ.ImproperlyConfigured(
        "FLAKEWATCH_DIGEST_TIMEZONE must be an IANA zone such as Europe/Berlin."
    ) from _exc
if FLAKEWATCH_DIGEST_QUIET not in {"note", "skip"}:
    raise environ.ImproperlyConfigured(
        "FLAKEWATCH_DIGEST_QUIET must be note (an all-quiet mail) or skip."
    )
# Quarantine (flakewatch/quarantine.py). A flaky test is suggested when its
# flake score (the 5% lower bound of its flake rate) reaches this: 0.02 means
# "flakes in at least 1 run in 50, with 95% confidence", which one or two
# lucky failures never reach (1 in 3 runs scores 0.007).
FLAKEWATCH_QUARANTINE_SUGGEST_SCORE = env.float(
    "FLAKEWATCH_QUARANTINE_SUGGEST_SCORE", 0.02
)
# A dismissed test is suggested again only once its score has risen this
# much above the score it was dismissed at.
FLAKEWATCH_QUARANTINE_RESUGGEST_MARGIN = env.float(
    "FLAKEWATCH_QUARANTINE_RESUGGEST_MARGIN", 0.05
)
FLAKEWATCH_QUARANTINE_DAYS = env.int("FLAKEWATCH_QUARANTINE_DAYS", 30)

# --- The API (Django REST framework: flakewatch/api.py, ingest/api.py) ---------
REST_FRAMEWORK = {
    # Project tokens, not users: request.auth is the ApiToken, request.user None.
    "DEFAULT_AUTHENTICATION_CLASSES": ["flakewatch.api_auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["flakewatch.api_auth.TokenRequired"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "flakewatch.errors.exception_handler",  # {"detail": "..."}
}
SPECTACULAR_SETTINGS = {
    "TITLE": "flakewatch API",
    "DESCRIPTION": (
        "Upload JUnit XML from CI and read the verdicts on a project's tests. Send "
        '\'Authorization: Bearer <token>\'; errors answer {"detail": "..."}.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],  # the schema is public and needs no token
    # Two choice sets of fields named "status": a test's verdict, an upload's.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "flakewatch.models.Status",
        "UploadStatusEnum": "flakewatch.models.Upload.Status",
    },
}

# --- Operations: metrics, retention, logs ---------------------------------------
# /metrics answers a request with "Authorization: Bearer <token>" when a token
# is set, or one from these networks (the client address Django sees: behind
# a proxy, the proxy's). flakewatch/health.py.
FLAKEWATCH_METRICS_TOKEN = env("FLAKEWATCH_METRICS_TOKEN", default="")
FLAKEWATCH_METRICS_ALLOW_NETWORKS = env.list(
    "FLAKEWATCH_METRICS_ALLOW_NETWORKS", default=["127.0.0.0/8", "::1/128"]
)
# A directory every web and worker process shares (compose: a volume), for
# prometheus_client's multiprocess mode: /metrics then sums what each worker
# counted (durations, digests, notifications). Empty: this process only, right
# for the embedded default. prometheus_client reads the variable itself.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")
# Days the stored report files and the raw executions are kept (0: forever);
# the nightly prune (flakewatch/retention.py) deletes older ones. Verdicts read
# raw executions within their 90-day window (flakewatch.states.WINDOW), so a
# shorter result retention would change answers and is refused.
FLAKEWATCH_RAW_PAYLOAD_RETENTION_DAYS = env.int(
    "FLAKEWATCH_RAW_PAYLOAD_RETENTION_DAYS", 30
)
FLAKEWATCH_RAW_RESULT_RETENTION_DAYS = env.int(
    "FLAKEWATCH_RAW_RESULT_RETENTION_DAYS", 0
)
MIN_RAW_RESULT_RETENTION_DAYS = 90
if FLAKEWATCH_RAW_PAYLOAD_RETENTION_DAYS < 0 or (
    0 < FLAKEWATCH_RAW_RESULT_RETENTION_DAYS < MIN_RAW_RESULT_RETENTION_DAYS
    or FLAKEWATCH_RAW_RESULT_RETENTION_DAYS < 0
):
    raise environ.ImproperlyConfigured(
        "FLAKEWATCH_RAW_PAYLOAD_RETENTION_DAYS must be 0 (keep forever) or more, "
        "and FLAKEWATCH_RAW_RESULT_RETENTION_DAYS 0 (keep forever) or at least "
        f"{MIN_RAW_RESULT_RETENTION_DAYS} (the verdicts' window)."
    )

# plain: one human-readable line a record; json: one JSON object a line, with
# the upload id on every line the pipeline writes (flakewatch/logs.py).
FLAKEWATCH_LOG_FORMAT = env("FLAKEWATCH_LOG_FORMAT", default="plain")
if FLAKEWATCH_LOG_FORMAT not in {"plain", "json"}:
    raise environ.ImproperlyConfigured("FLAKEWATCH_LOG_FORMAT must be plain or json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"upload": {"()": "flakewatch.logs.UploadContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "flakewatch.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": FLAKEWATCH_LOG_FORMAT,
            "filters": ["upload"],
        }
    },
    "root": {
        "handlers": ["console"],
        "level": env("FLAKEWATCH_LOG_LEVEL", default="INFO"),
    },
}
