"""DefectLab settings: every knob is a documented ``DEFECTLAB_*`` environment variable.

`env()` (`defectlab.config`) registers each variable with its default and help text
(``docs/configuration.md`` must list them all; a test checks). A value that does not parse is
recorded in ``PROBLEMS`` and the default is used, so ``defectlab check`` can explain it in plain
words instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from defectlab.config import PROBLEMS as PROBLEMS  # read as settings too (`defectlab check`)
from defectlab.config import SETTINGS as SETTINGS
from defectlab.config import (
    boolean,
    choice,
    csv_list,
    database,
    endpoint_map,
    env,
    hosts,
    key_list,
    positive_float,
    positive_int,
    secret_key,
    temp_dir,
    whole_number,
)

# ---------------------------------------------------------------------------- the settings

DATA_DIR = env(
    "DEFECTLAB_DATA_DIR",
    "./data",
    "Directory for the SQLite database, stored images, thumbnails and the generated secret key.",
    lambda value: Path(value).expanduser().resolve(),
)
DATABASE_URL = env(
    "DEFECTLAB_DATABASE_URL",
    "",
    "Database to use, e.g. `postgresql://user:pass@host:5432/defectlab`. "
    "Empty means SQLite at `$DEFECTLAB_DATA_DIR/defectlab.sqlite3`.",
)
DATABASE_TRANSACTION_POOLING = env(
    "DEFECTLAB_DATABASE_TRANSACTION_POOLING",
    "false",
    "PostgreSQL is reached through a pooler in transaction mode (PgBouncer `pool_mode = "
    "transaction`): no server-side cursors, which such a pooler cannot keep across transactions.",
    boolean,
)
DEBUG = env(
    "DEFECTLAB_DEBUG",
    "false",
    "Development mode: detailed error pages. Never in production.",
    boolean,
)
PUBLIC_URLS = env(
    "DEFECTLAB_PUBLIC_URLS",
    "http://127.0.0.1:8080,http://localhost:8080",
    "Comma-separated addresses users reach the app at. Sets the allowed hosts and the CSRF "
    "trusted origins.",
    csv_list,
)
PROXY_HEADERS = env(
    "DEFECTLAB_PROXY_HEADERS",
    "false",
    "Trust `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-For` from a reverse proxy. "
    "Turn on only when the app is reachable solely through that proxy.",
    boolean,
)
HSTS_SECONDS = env(
    "DEFECTLAB_HSTS_SECONDS",
    "31536000",
    "Responses served over HTTPS tell browsers to use only HTTPS for this host name for this "
    "many seconds (Strict-Transport-Security; never sent over plain http). 0 turns it off.",
    whole_number,
)
HOST = env("DEFECTLAB_HOST", "127.0.0.1", "Address `defectlab serve` listens on.")
PORT = env("DEFECTLAB_PORT", "8080", "Port `defectlab serve` listens on.", positive_int)
WEB_WORKERS = env("DEFECTLAB_WEB_WORKERS", "2", "Web server worker processes.", positive_int)
WEB_MAX_MEMORY_MB = env(
    "DEFECTLAB_WEB_MAX_MEMORY_MB",
    "96",
    "A web worker process that a request left above this much memory (its PSS, in MB) finishes "
    "the requests it has and is replaced by a fresh one. 0 never replaces it for its memory.",
    whole_number,
)
WEB_MAX_REQUESTS = env(
    "DEFECTLAB_WEB_MAX_REQUESTS",
    "2000",
    "A web worker process is replaced by a fresh one after about this many requests (give or "
    "take a tenth, so they do not all go at once), handing back to the system the memory a big "
    "request left behind. 0 keeps workers for good.",
    whole_number,
)
MIGRATE_AT_START = env(
    "DEFECTLAB_MIGRATE_AT_START",
    "false",
    "`defectlab serve` migrates the database before it answers (under a lock on PostgreSQL, so "
    "replicas starting together take turns). The container image turns it on.",
    boolean,
)
LOG_FORMAT = env(
    "DEFECTLAB_LOG_FORMAT",
    "json",
    "`json` (one object a line, for production) or `text` (for reading in a terminal).",
    choice("json", "text"),
)
LOG_LEVEL = env(
    "DEFECTLAB_LOG_LEVEL",
    "INFO",
    "Log level: DEBUG, INFO, WARNING or ERROR.",
    choice("DEBUG", "INFO", "WARNING", "ERROR"),
)
LANGUAGE = env(
    "DEFECTLAB_LANGUAGE",
    "en",
    "The installation's default language: `en` or `zh-hans`. Pages use it when neither the "
    "person's own choice nor the browser names one; `defectlab demo` names its classes, "
    "attributes and project in it.",
    choice("en", "zh-hans"),
)
ADMIN_EMAIL = env(
    "DEFECTLAB_ADMIN_EMAIL",
    "admin@example.com",
    "E-mail of the owner account `defectlab createadmin` (and `make run`) creates.",
)
ADMIN_PASSWORD = env(
    "DEFECTLAB_ADMIN_PASSWORD",
    "",
    "Password for that account. Empty: one is generated and printed once.",
)
MAX_UPLOAD_MB = env(
    "DEFECTLAB_MAX_UPLOAD_MB", "200", "Largest single uploaded image, in MB.", positive_int
)
MAX_MODEL_MB = env(
    "DEFECTLAB_MAX_MODEL_MB",
    "200",
    "Largest model file (.onnx) an organization may upload to its model registry, in MB.",
    positive_int,
)
MODEL_CHECK_MEMORY_MB = env(
    "DEFECTLAB_MODEL_CHECK_MEMORY_MB",
    "1024",
    "Memory (address space, in MB) of the separate process that runs a newly uploaded model once "
    "on a synthetic image before its version can be used; a model that needs more fails its check.",
    positive_int,
)
MODEL_CHECK_SECONDS = env(
    "DEFECTLAB_MODEL_CHECK_SECONDS",
    "60",
    "Seconds that check may take, loading the model included; a model that runs longer fails it.",
    positive_float,
)
# The detection service's and edge mirrors' settings, in a module of their own.
from defectlab.detectionsettings import *  # noqa: E402, F403

MAX_IMAGE_PIXELS = env(
    "DEFECTLAB_MAX_IMAGE_PIXELS",
    "150000000",
    "Largest image accepted, in pixels (width × height); larger images are refused before decoding.",
    positive_int,
)
MAX_ARCHIVE_FILES = env(
    "DEFECTLAB_MAX_ARCHIVE_FILES",
    "100000",
    "Most images a zip upload or dataset import may hold. A dataset may also hold one annotation "
    "file per image and 1,000 other files; sizes and compression ratios are checked apart.",
    positive_int,
)
MAX_ARCHIVE_MB = env(
    "DEFECTLAB_MAX_ARCHIVE_MB",
    "4096",
    "Largest zip upload, in MB, both as uploaded and uncompressed.",
    positive_int,
)
MAX_IMPORT_MB = env(
    "DEFECTLAB_MAX_IMPORT_MB",
    "256",
    "Largest task import (POST /api/projects/{id}/import/: a JSON body or uploaded .json file), "
    "in MB.",
    positive_int,
)
FETCH_TIMEOUT = env(
    "DEFECTLAB_FETCH_TIMEOUT",
    "30",
    "Seconds one fetch of a user-supplied URL (URL import, webhook) may take in all: DNS, "
    "connecting, every redirect and the whole body.",
    positive_int,
)
FETCH_ALLOWLIST = env(
    "DEFECTLAB_FETCH_ALLOWLIST",
    "",
    "Comma-separated addresses, networks (CIDR) or exact host names that every organization's "
    "fetches may reach although the policy refuses them: loopback (`127.0.0.1/32`, `localhost`), "
    "link-local, cloud metadata, this server's own addresses. Organizations can open private "
    "ranges themselves; this is for what only the operator may decide. Anything listed here is "
    "reachable by every user who can import from a URL or add a storage — see “Opening addresses "
    "for every organization” below.",
    csv_list,
)
MEDIA_URL_TTL = env(
    "DEFECTLAB_MEDIA_URL_TTL",
    "600",
    "Longest time, in seconds, a signed image or thumbnail URL stays valid (the same link is "
    "handed out again for up to half of it, so browsers can cache the image).",
    positive_int,
)
TASK_LOCK_SECONDS = env(
    "DEFECTLAB_TASK_LOCK_SECONDS",
    "1800",
    "How long a task handed out by “next task” stays reserved for its annotator.",
    positive_int,
)
INVITE_TTL_HOURS = env(
    "DEFECTLAB_INVITE_TTL_HOURS", "168", "Hours an invite link stays valid.", positive_int
)
LOGIN_MAX_FAILURES = env(
    "DEFECTLAB_LOGIN_MAX_FAILURES",
    "5",
    "Failed logins for one e-mail (or 4× that from one address) before logins are paused.",
    positive_int,
)
LOGIN_LOCKOUT_SECONDS = env(
    "DEFECTLAB_LOGIN_LOCKOUT_SECONDS",
    "900",
    "Window and pause length for failed logins, in seconds.",
    positive_int,
)
BROKER_URL = env(
    "DEFECTLAB_BROKER_URL",
    "",
    "Job queue: `amqp://user:pass@host:5672/vhost` for RabbitMQ. Empty: the embedded queue in "
    "`$DEFECTLAB_DATA_DIR/queue.sqlite3` (`sqlite:///path` picks another file).",
)
JOB_QUEUE = env(
    "DEFECTLAB_JOB_QUEUE",
    "jobs",
    "Name of the job queue; give installations that share one RabbitMQ different names.",
)
JOB_LEASE_SECONDS = env(
    "DEFECTLAB_JOB_LEASE_SECONDS",
    "30",
    "Embedded queue: a killed worker's jobs are handed out again at most this many seconds later.",
    positive_int,
)
JOB_MAX_ATTEMPTS = env(
    "DEFECTLAB_JOB_MAX_ATTEMPTS",
    "5",
    "Times a job is tried before it is marked failed: after a passing failure (a timeout, a "
    "lost connection; with growing pauses) or a worker that died while running it.",
    positive_int,
)
WEBHOOK_RETRY_SECONDS = env(
    "DEFECTLAB_WEBHOOK_RETRY_SECONDS",
    "10",
    "Pause before a failed webhook delivery is tried again; it doubles after each failed attempt "
    "(10, 20, 40, 80 seconds by default), up to DEFECTLAB_JOB_MAX_ATTEMPTS attempts in all.",
    positive_float,
)
WORKER_THREADS = env(
    "DEFECTLAB_WORKER_THREADS", "2", "Jobs one `defectlab worker` runs at a time.", positive_int
)
WORKER_MAX_MEMORY_MB = env(
    "DEFECTLAB_WORKER_MAX_MEMORY_MB",
    "160",
    "A job worker that has grown past this much memory (its PSS, in MB) after a job stops taking "
    "jobs, lets the ones in progress finish and exits, to be started again at once (by "
    "`defectlab serve`, or by your service manager: the exit code is 75). This hands back what a "
    "big import or export left behind. 0 never recycles.",
    whole_number,
)
WORKER_EMBEDDED = env(
    "DEFECTLAB_WORKER_EMBEDDED",
    "true",
    "`defectlab serve` also runs a worker process. Turn off when workers run on their own.",
    boolean,
)
WORKER_HEARTBEAT_SECONDS = env(
    "DEFECTLAB_WORKER_HEARTBEAT_SECONDS",
    "5",
    "How often each job worker records that it is alive. `/readyz` answers 503 when no worker "
    "has for three times this long.",
    positive_int,
)
WORKER_METRICS_HOST = env(
    "DEFECTLAB_WORKER_METRICS_HOST",
    "127.0.0.1",
    "Address `defectlab worker` serves `/healthz`, `/readyz` and `/metrics` on (`0.0.0.0` in a "
    "container, for its orchestrator's probes and Prometheus).",
)
WORKER_METRICS_PORT = env(
    "DEFECTLAB_WORKER_METRICS_PORT",
    "8081",
    "Port of `defectlab worker`'s `/healthz`, `/readyz` and `/metrics`. 0 turns them off. The "
    "worker `defectlab serve` runs itself has none: the web's cover it.",
    whole_number,
)
METRICS_TOKEN = env(
    "DEFECTLAB_METRICS_TOKEN",
    "",
    "When set, `/metrics` of the web, the worker and the detection service answer only requests "
    "with `Authorization: Bearer <this token>` (401 otherwise). Empty: anyone who reaches the "
    "port may read them; keep `/metrics` off the public proxy (docs/operations.md).",
)
METRICS_CACHE_SECONDS = env(
    "DEFECTLAB_METRICS_CACHE_SECONDS",
    "15",
    "`/metrics` reads its gauges from the database (jobs by state, queue depth, tasks by status, "
    "live workers) at most once in this many seconds per process. 0 reads them at every scrape.",
    whole_number,
)
SECRET_KEY_SETTING = env(
    "DEFECTLAB_SECRET_KEY",
    "",
    "Key for signing sessions and media URLs. Empty: one is generated into the data directory.",
)
SECRET_KEY_FALLBACKS = env(
    "DEFECTLAB_SECRET_KEY_FALLBACKS",
    "",
    "Earlier values of `DEFECTLAB_SECRET_KEY`, separated by commas or spaces, while rotating "
    "it: sessions, password-reset links, media URLs and backups made with them are still "
    "accepted, and stored secrets encrypted with them still decrypt. New ones use "
    "`DEFECTLAB_SECRET_KEY` only. Empty: none.",
    key_list,
)


S3_PUBLIC_ENDPOINTS = env(
    "DEFECTLAB_S3_PUBLIC_ENDPOINTS",
    "",
    "S3 / MinIO storage: the endpoint browsers can reach, per address they reach the app at, as "
    "comma-separated `app-host=endpoint-url` pairs, e.g. "
    "`defects.example.com=https://s3.example.com,10.1.2.3:8080=http://10.1.2.3:9000`. Image URLs "
    "are signed for the endpoint mapped to the request's host (with its port, else without); "
    "other hosts get the storage's own endpoint.",
    endpoint_map,
)
S3_MULTIPART_MB = env(
    "DEFECTLAB_S3_MULTIPART_MB",
    "16",
    "S3 / MinIO storage: files larger than this many MB are uploaded in parts of this size "
    "(at least 5).",
    positive_int,
)

S3_INTERACTIVE_TIMEOUT = env(
    "DEFECTLAB_S3_INTERACTIVE_TIMEOUT",
    "5",
    "S3 / MinIO storage: seconds a request made while a person waits (an image shown through "
    "DefectLab, a thumbnail, a TIFF rendered) waits to connect and then for each answer; it is "
    "not retried. Syncs, writes and exports wait longer and retry.",
    positive_float,
)
S3_BREAKER_FAILURES = env(
    "DEFECTLAB_S3_BREAKER_FAILURES",
    "3",
    "S3 / MinIO storage: after this many failures in a row to reach a storage, images from it "
    "are answered at once with an error for `DEFECTLAB_S3_BREAKER_SECONDS`, then one request "
    "tries again.",
    positive_int,
)
S3_BREAKER_SECONDS = env(
    "DEFECTLAB_S3_BREAKER_SECONDS",
    "30",
    "S3 / MinIO storage: seconds a storage that stopped answering is left alone before one "
    "request tries it again.",
    positive_int,
)
S3_CALLS_PER_STORAGE = env(
    "DEFECTLAB_S3_CALLS_PER_STORAGE",
    "2",
    "S3 / MinIO storage: requests one web process makes to one storage at the same time for "
    "images and thumbnails; more are answered at once with 503 (try again). Keep it below the "
    "web server's threads per process, so a storage that hangs leaves threads for everything "
    "else.",
    positive_int,
)

# ---------------------------------------------------------------------------- derived


SECRET_KEY = secret_key(SECRET_KEY_SETTING, DATA_DIR)
ALLOWED_HOSTS = hosts(PUBLIC_URLS)
CSRF_TRUSTED_ORIGINS = [url.rstrip("/") for url in PUBLIC_URLS if urlsplit(url).hostname]
if PROXY_HEADERS:
    USE_X_FORWARDED_HOST = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Secure per request, not fixed: defectlab.https.SecureCookiesMiddleware marks the cookies of
# HTTPS responses, so one installation can serve the LAN over http and the WAN over https.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = HSTS_SECONDS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

DATABASES = {"default": database(DATABASE_URL, DATA_DIR)}
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_TRANSACTION_POOLING
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "tenancy.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "defectlab.tenancy",
    "defectlab.labeling",
    "defectlab.media",
    "defectlab.ingest",
    "defectlab.jobs",
    "defectlab.transfer",
    "defectlab.inference",
    "defectlab.serving",
    "defectlab.insight",
    "defectlab.hooks",
    "defectlab.operations",
    "defectlab.web",
]
MIDDLEWARE = [
    "defectlab.operations.endpoints.RequestMetrics",  # first: times the rest; /healthz, /readyz, /metrics
    "django.middleware.security.SecurityMiddleware",
    "defectlab.https.SecureCookiesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "defectlab.tenancy.middleware.UserLanguageMiddleware",
    "defectlab.tenancy.middleware.AuditOriginMiddleware",
    "defectlab.ingest.bodylimit.BodyLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "defectlab.urls"
WSGI_APPLICATION = "defectlab.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "defectlab.web.context.navigation",
            ]
        },
    }
]

LOGIN_URL = "login"
# A refused form from a stale tab: the log-in page again with a word why, a styled 403
# elsewhere, the API's error shape under /api/.
CSRF_FAILURE_VIEW = "defectlab.web.errors.csrf_failure"
LANGUAGE_CODE = LANGUAGE
# Each language named in itself: a person who cannot read the current one still finds their own.
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [Path(__file__).parent / "web" / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGE_DIR = DATA_DIR / "storage"
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
# Larger uploads go to a file here, on the data volume (config.temp_dir says why).
FILE_UPLOAD_TEMP_DIR = str(temp_dir(DATA_DIR) or "") or None
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1000
WHITENOISE_USE_FINDERS = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "defectlab.tenancy.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "defectlab.schema.AutoSchema",
    "EXCEPTION_HANDLER": "defectlab.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DefectLab API",
    "DESCRIPTION": "Organizations, projects, tasks, annotations, predictions and reviews.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # A storage's role (source/target) is not a member's role.
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "defectlab.tenancy.models.Role",
        "StorageRoleEnum": "defectlab.media.models.StorageRole",
        "EvaluationStateEnum": "defectlab.insight.models.EvaluationState",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "defectlab.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    # stdout in the server roles, stderr in other commands (logs.RoleStream).
    "handlers": {"stdout": {"class": "defectlab.logs.RoleStream", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
}
