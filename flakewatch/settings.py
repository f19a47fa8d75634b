"""Settings for flakewatch, all from environment variables.

With nothing set, flakewatch runs on its embedded default: a SQLite file under
``var/``, Celery tasks run in-process, mail printed to the console. Production
sets ``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL`` (Redis); see the
settings table in README.md.
"""

from pathlib import Path

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
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
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

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="flakewatch@localhost")

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env("FLAKEWATCH_LOG_LEVEL", default="INFO"),
    },
}
