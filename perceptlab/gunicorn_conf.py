"""Gunicorn settings for production (README "Production"), read from the environment.

Started by ``scripts/serve.sh`` as ``gunicorn -c python:perceptlab.gunicorn_conf``.

Worker model: ``gthread`` — ``PERCEPTLAB_WEB_WORKERS`` processes (default cores + 1) of
``PERCEPTLAB_WEB_THREADS`` threads (default 4). A Python process runs Python on one core
at a time (the GIL), so it takes one process per core to use every core, plus one so a
core is not left idle while a process is paused (garbage collection, a worker being
replaced). The threads overlap what a rater request mostly waits on — PostgreSQL, the
disk, the network — and keep-alive connections wait in the process's poller, not in a
thread. More processes would add memory (each holds Django, numpy and pandas) and
database connections, not throughput. On the 2-core machine: 3 × 4 = 12 requests at once
and at most 12 database connections; on N cores (N + 1) × 4, e.g. 17 × 4 = 68 on 16
cores, within PostgreSQL's default ``max_connections`` of 100 (see README "Production"
for the pool).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

from perceptlab.lib.env import envbool, envchoice, envint, envlist, envstr


def cores() -> int:
    """The CPUs this process may run on (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


wsgi_app = "perceptlab.wsgi:application"
bind = envlist("PERCEPTLAB_BIND", ["127.0.0.1:8000"])
worker_class = "gthread"
workers = envint("PERCEPTLAB_WEB_WORKERS", cores() + 1, min_value=1, max_value=256)
threads = envint("PERCEPTLAB_WEB_THREADS", 4, min_value=1, max_value=64)

# Import the application once in the master and fork the workers from it: a replaced
# worker starts in milliseconds instead of re-importing Django, numpy and pandas, and an
# import error stops the start instead of looping. Django opens no connection at import.
preload_app = envbool("PERCEPTLAB_PRELOAD", True)
# A worker is replaced after this many requests (spread by the jitter, so they are not
# replaced together), which bounds the memory a long-lived process accumulates. Not too
# often: a replaced worker closes its keep-alive connections, and a client sending on one
# at that moment meets a reset and must send again. At 5,000, a worker at the judgment
# ceiling (~200 requests/s) was replaced every ~25 s, and 37 requests of a 1,000-rater run
# met such a reset (bench/load.py).
max_requests = envint("PERCEPTLAB_MAX_REQUESTS", 50_000, min_value=0)
max_requests_jitter = max(1, max_requests // 10) if max_requests else 0

# gthread: the master kills a worker whose main loop has not reported for `timeout`
# seconds (stuck, not merely busy: long admin actions run in threads and are not cut).
timeout = envint("PERCEPTLAB_WEB_TIMEOUT", 60, min_value=5)
# On SIGTERM (Ctrl+C in serve.sh, a deploy) requests in flight get this long to finish.
graceful_timeout = envint("PERCEPTLAB_GRACEFUL_TIMEOUT", 30, min_value=1)
# Seconds an idle keep-alive connection from the proxy stays open; longer than nginx's
# upstream keepalive_timeout is wasteful, shorter makes it reconnect for every trial.
keepalive = envint("PERCEPTLAB_KEEPALIVE", 5, min_value=0)

# Bounded requests: the request line (the longest is an invitation link with Prolific's
# three ids), the number of headers and the size of one; bodies are bounded by Django's
# DATA_UPLOAD_* settings and the proxy's client_max_body_size.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# The HTTP parser: gunicorn's C parser (the package gunicorn_h1c, the `fast` extra, which
# scripts/setup.sh installs where it compiles) when it is installed, else gunicorn's Python
# one ("auto"); "fast" refuses to start without it, "python" never uses it. Measured on the
# 2-core machine (bench/load.py, the same code run alternately): 0.80/0.72 → 0.63/0.57 ms of
# server CPU per bare request, 12.6/9.5 → 11.5/8.8 ms per judgment. Both parsers enforce the
# limits above; tests/load/test_http_parser.py sends each malformed requests.
http_parser = envchoice("PERCEPTLAB_HTTP_PARSER", "auto", ["auto", "fast", "python"])

# X-Forwarded-* are trusted from these addresses only (the proxy on this machine).
forwarded_allow_ips = envstr("PERCEPTLAB_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# No access log by default: the front server (nginx) logs every request already, and
# gunicorn's formatting and writing of one line cost ~4 % of the CPU of a rater's
# judgment under load (py-spy, bench/load.py). "-" writes it to stdout, or a file path.
accesslog = envstr("PERCEPTLAB_ACCESS_LOG", "") or None
errorlog = "-"
# Heartbeat files on a memory file system: a busy disk must not look like a stuck worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No control socket in $HOME: several instances on one machine would share its path.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Refuse to start with a production configuration error (perceptlab.E001: the public
    development secret key; perceptlab.E002: static files not collected)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "perceptlab.settings")
    import django
    from django.core import checks

    django.setup()
    from perceptlab.checks import PRODUCTION

    found = checks.run_checks(include_deployment_checks=True, tags=[PRODUCTION])
    errors = [str(message) for message in found if message.is_serious()]
    if errors:
        raise SystemExit("PerceptLab will not start:\n" + "\n".join(errors))


def pre_fork(server: Any, worker: Any) -> None:
    """The master holds no database connection across a fork: a child using an SQLite
    connection (or a PostgreSQL socket) opened by its parent corrupts it ("database disk
    image is malformed"). Nothing in the master should open one; this makes sure.

    Then everything the master holds (Django, numpy, pandas, the application: about 200,000
    objects the cyclic garbage collector tracks) is frozen out of the collector's reach
    (``gc.freeze``, as the ``gc`` module's documentation advises right before a fork): a
    worker's full collections traverse only what it made itself. Unfrozen, one full
    collection walked all of it for ~140 ms of CPU (measured in process, once per ~250
    judgment POSTs), a pause of every request the worker holds; the workers' memory pages
    also stay shared with the master instead of being copied when the collector writes to
    them. The judgment ceiling of bench/load.py did not move beyond its noise (6.4 and 7.0
    ms of server CPU per judgment before, 7.4 and 6.7 after, run alternately).
    """
    from django.db import connections

    connections.close_all()
    gc.freeze()


def post_fork(server: Any, worker: Any) -> None:
    """Each worker hands the GIL between its threads every ``PERCEPTLAB_GIL_SWITCH_US``
    microseconds (default 1,000; Python's own is 5,000). A thread answering a short rater
    request (a judgment takes ~3 ms of CPU) otherwise waits up to 5 ms per hand-over for a
    thread running a long one, in every queue it passes. With 500 raters (2–6 s think
    time, ~120 judgments/s, half the ceiling), four runs alternating 5 ms and 1 ms gave
    a judge p99 of 159, 151, 110, 44 ms and 121, 111, 65, 44 ms; the ceiling moved
    within its noise (README "Reliability")."""
    sys.setswitchinterval(gil_switch_us() / 1_000_000)


def gil_switch_us() -> int:
    return envint("PERCEPTLAB_GIL_SWITCH_US", 1000, min_value=100, max_value=100_000)
