"""PerceptLab settings, read from the environment (see README "Configuration").

Every value has an embedded default (SQLite in WAL mode, local files under ``var/``,
one worker); nothing here needs editing to run the demo.
"""

from __future__ import annotations

from pathlib import Path

from perceptlab.lib.env import (
    database_connections,
    database_from_url,
    envbool,
    envchoice,
    envheader,
    envint,
    envlist,
    envpath,
    envstr,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = envpath("PERCEPTLAB_VAR_DIR", BASE_DIR / "var")

DEBUG = envbool("DJANGO_DEBUG", False)
# Public, so only for development: production refuses to start with it (perceptlab.E001).
DEV_SECRET_KEY = "insecure-dev-key-set-DJANGO_SECRET_KEY-in-production"
SECRET_KEY = envstr("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# MTurk shows an ExternalQuestion inside an iframe on mturk.com: a cross-site frame, where
# browsers send only SameSite=None cookies, and those only over HTTPS. Turn this on (with
# HTTPS) for MTurk studies; the rater pages allow only MTurk's hosts to frame them.
PERCEPTLAB_MTURK_FRAMES = envbool("PERCEPTLAB_MTURK_FRAMES", False)
if PERCEPTLAB_MTURK_FRAMES:
    CSRF_COOKIE_SAMESITE = "None"
    CSRF_COOKIE_SECURE = True

# HTTPS (README "Production"). DJANGO_SECURE=1 once the site is reached over HTTPS only:
# http:// redirects to https://, HSTS, cookies sent over HTTPS only. Behind a TLS proxy,
# DJANGO_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO=https says which header marks an HTTPS
# request; the proxy must set it on every request (never pass the client's own).
SECURE = envbool("DJANGO_SECURE", False)
SECURE_PROXY_SSL_HEADER = envheader("DJANGO_PROXY_SSL_HEADER")
SECURE_SSL_REDIRECT = SECURE and envbool("DJANGO_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", 31_536_000, min_value=0) if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = envbool("DJANGO_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE or PERCEPTLAB_MTURK_FRAMES
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "perceptlab.apps.PerceptLabConfig",  # production checks and the staff-only media view
    "perceptlab.codecs",
    "perceptlab.studies",
    "perceptlab.evaluation",
    # After our apps: perceptlab.codecs' `db_worker` (the worker plus job reclaim and slot
    # reconciliation) takes the place of django_tasks_db's command of the same name.
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A rater's images (/r/<code>/img/<token>, 2–3 per judgment) answered here, past
    # the rest of the stack; everything else goes on (perceptlab/studies/images.py).
    "perceptlab.studies.images.rater_images",
    # Serves the rater page's static files in every mode (no web server needed for the
    # embedded default; behind a CDN in larger deployments).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "perceptlab.studies.guard.input_guard",  # hostile input on rater paths → 4xx, JSON on the API
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "perceptlab.urls"
WSGI_APPLICATION = "perceptlab.wsgi.application"

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

if not envstr("DATABASE_URL", ""):
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # home of the embedded SQLite database
DATABASES = {
    "default": database_connections(
        database_from_url(
            envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'perceptlab.sqlite3'}"),
            base_dir=BASE_DIR,
        )
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Files: always through the storage API (STORAGES), so django-storages/S3 is a settings change.
MEDIA_ROOT = envpath("PERCEPTLAB_MEDIA_ROOT", VAR_DIR / "media")
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = envpath("PERCEPTLAB_STATIC_ROOT", VAR_DIR / "static")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # collectstatic's target; may stay empty
# Production (scripts/serve.sh) serves what collectstatic gathered: compressed, with the
# content hash in the name, so browsers cache them for good. Development and tests serve
# the apps' files as they are, without a collectstatic step.
STATIC_MANIFEST = envbool("PERCEPTLAB_STATIC_MANIFEST", False)
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
STORAGES = {
    "default": {
        "BACKEND": envstr(
            "PERCEPTLAB_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"
        ),
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Stored files (rater images, the admin's previews under /media/, staff only) are streamed
# by the web process, or sent by the front server when it says so: "x-accel-redirect"
# (nginx: an internal location at PERCEPTLAB_SENDFILE_PREFIX) or "x-sendfile" (Apache,
# lighttpd: the file's path). README "Production" has the nginx location.
PERCEPTLAB_SENDFILE = envchoice("PERCEPTLAB_SENDFILE", "", ["", "x-accel-redirect", "x-sendfile"])
PERCEPTLAB_SENDFILE_PREFIX = envstr("PERCEPTLAB_SENDFILE_PREFIX", "/_protected/")

# Bounded requests. A body's form fields and JSON are held in memory, so they stay small
# (the largest is an admin change form; a judgment is under 4 KiB); uploaded files above
# FILE_UPLOAD_MAX_MEMORY_SIZE go to a temporary file, which is how the admin takes images
# up to IMAGE_MAX_BYTES without holding them in memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = envint("PERCEPTLAB_MAX_FORM_FIELDS", 5000, min_value=100)
DATA_UPLOAD_MAX_NUMBER_FILES = envint("PERCEPTLAB_MAX_UPLOAD_FILES", 500, min_value=1)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = envstr("PERCEPTLAB_UPLOAD_TEMP_DIR", "") or None

# Background jobs: django-tasks (the API Django 6 ships) with the database backend;
# `manage.py db_worker` runs them. PERCEPTLAB_TASKS=immediate runs them inline.
_TASK_BACKENDS = {
    "database": "django_tasks_db.DatabaseBackend",
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
    "dummy": "django_tasks.backends.dummy.DummyBackend",
}
TASKS_BACKEND_NAME = envstr("PERCEPTLAB_TASKS", "database")
TASKS = {
    "default": {
        # An unknown name fails in the system check codecs.E010, not with a KeyError here.
        "BACKEND": _TASK_BACKENDS.get(TASKS_BACKEND_NAME, TASKS_BACKEND_NAME),
    }
}
# Seconds a running generation job may go without a heartbeat before another worker may
# take it over (a worker killed mid-job leaves its lease to expire). The running worker
# renews it every third of this, however many codec calls the job makes.
GENERATION_LEASE_SECONDS = envint("PERCEPTLAB_LEASE_SECONDS", 120, min_value=10)
# A job whose worker was lost this many times is failed instead of enqueued again (it may
# be what kills its worker, e.g. by running out of memory).
GENERATION_MAX_ATTEMPTS = envint("PERCEPTLAB_JOB_MAX_ATTEMPTS", 3, min_value=1)
# Seconds between two maintenance passes of every `db_worker` (and one at its start):
# re-enqueue jobs of lost workers, repair drifted slot counters.
WORKER_MAINTENANCE_SECONDS = envint("PERCEPTLAB_MAINTENANCE_SECONDS", 60, min_value=1)
# Each pass runs these upkeep functions, each layer's own (dotted paths): the slot
# counters of live studies, the stored analyses of studies whose data changed, and the
# ladders of adaptive flicker studies (rates added where a threshold falls between two).
WORKER_MAINTENANCE_HOOKS = [
    "perceptlab.studies.reconcile.reconcile_live_studies",
    "perceptlab.evaluation.stored.refresh_pass",
    "perceptlab.studies.ladders.extend_ladders",
]
# A generation job that made its reconstruction is handed to these (dotted paths, called
# with the job's id in the worker that ran it): a flicker ladder's new rate is built into
# its study at once, not at the next maintenance pass.
GENERATION_DONE_HOOKS = ["perceptlab.studies.ladders.job_done"]
# Stored analyses (evaluation/stored.py): a study whose judgments keep coming in gets a new
# analysis at most every ANALYSIS_DEBOUNCE_SECONDS; one running longer than
# ANALYSIS_LOST_SECONDS lost its worker and is requested again.
ANALYSIS_DEBOUNCE_SECONDS = envint("PERCEPTLAB_ANALYSIS_DEBOUNCE_SECONDS", 60, min_value=0)
ANALYSIS_LOST_SECONDS = envint("PERCEPTLAB_ANALYSIS_LOST_SECONDS", 1800, min_value=60)
# Worker processes the demo/run script starts.
WORKER_PROCESSES = envint("PERCEPTLAB_WORKERS", 1, min_value=1, max_value=64)

# Model weights (VGG for DISTS/LPIPS, learned codecs): never downloaded implicitly;
# `manage.py fetch_weights` puts them here (from the internet or --from a folder).
PERCEPTLAB_WEIGHTS_DIR = envpath("PERCEPTLAB_WEIGHTS_DIR", VAR_DIR / "weights")
# Neural codecs: checkpoints trained here (manage.py train_codec) go to PERCEPTLAB_NEURAL_DIR,
# beside the ones shipped in perceptlab/codecs/neural/checkpoints/. They encode on
# PERCEPTLAB_NEURAL_DEVICE ("cpu" or "cuda"; a bitstream decodes on the device type that made
# it) with PERCEPTLAB_TORCH_THREADS CPU threads (1 is fastest on a busy machine).
PERCEPTLAB_NEURAL_DIR = envpath("PERCEPTLAB_NEURAL_DIR", VAR_DIR / "neural")
PERCEPTLAB_NEURAL_DEVICE = envstr("PERCEPTLAB_NEURAL_DEVICE", "cpu")
PERCEPTLAB_TORCH_THREADS = envint("PERCEPTLAB_TORCH_THREADS", 1, min_value=1, max_value=256)
# Evaluation defaults: bootstrap resamples of raters for every interval a report shows.
EVALUATION_RESAMPLES = envint("PERCEPTLAB_EVAL_RESAMPLES", 2000, min_value=100)

# Image intake limits.
IMAGE_MAX_PIXELS = envint("PERCEPTLAB_IMAGE_MAX_PIXELS", 50_000_000, min_value=1)
IMAGE_MAX_SIDE = envint("PERCEPTLAB_IMAGE_MAX_SIDE", 16_384, min_value=16)
IMAGE_MIN_SIDE = envint("PERCEPTLAB_IMAGE_MIN_SIDE", 16, min_value=1)
IMAGE_MAX_BYTES = envint("PERCEPTLAB_IMAGE_MAX_BYTES", 200 * 1024 * 1024, min_value=1024)

# External codec binaries: a name looked up on PATH, or an absolute path.
CODEC_BINARIES = {
    "bpgenc": envstr("BPGENC", "bpgenc"),
    "bpgdec": envstr("BPGDEC", "bpgdec"),
    "vvencapp": envstr("VVENCAPP", "vvencapp"),
    "vvdecapp": envstr("VVDECAPP", "vvdecapp"),
}
# Programs behind metrics: butteraugli_main (Debian's libjxl-devtools), a name or a path.
METRIC_BINARIES = {"butteraugli": envstr("BUTTERAUGLI", "butteraugli_main")}
# Seconds an external encoder/decoder may run before it is killed.
CODEC_TIMEOUT_SECONDS = envint("PERCEPTLAB_CODEC_TIMEOUT", 600, min_value=1)
# The user's own command-line codecs, a TOML file (README, "Command-line codecs"); the shipped
# perceptlab/codecs/commandline.toml is always read as well.
PERCEPTLAB_CODECS_FILE = envstr("PERCEPTLAB_CODECS_FILE", "") or None

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("PERCEPTLAB_LOG_LEVEL", "INFO")},
}
