"""Benchmark: a thousand raters at once, against gunicorn on SQLite or PostgreSQL.

Builds a fresh database (SQLite in WAL mode under a temporary folder, or a PostgreSQL
database ``perceptlab_load_<pid>`` on ``--pg-url``'s server, dropped afterwards), a live
study (``--method``, 2AFC by default) of synthetic images with real JPEG/WebP stimuli
(``tests/studykit.py``), sized so that no rater meets a full study, and serves it with
gunicorn on 127.0.0.1 with the production settings (``perceptlab/gunicorn_conf.py``;
``--workers`` × ``--threads``). The load generator is this process: asyncio virtual
raters (``tests/load/harness.py``), each with its own cookie jar and connections, playing
the whole rater flow over HTTP (static files left out: a browser caches them). Three
phases, one client:

1. bare view: ``--max-raters`` clients GET ``/healthz`` back to back (no database): the
   web stack's own ceiling on this machine;
2. max throughput: ``--max-raters`` raters with no think time: the judgment ceiling;
3. the crowd: ``--raters`` raters arriving over ``--ramp`` seconds, think time
   ``--think`` seconds (uniform); ``--kill-web`` SIGKILLs gunicorn (all of it, or
   ``workers`` only) 40 % of the way and restarts it, ``--kill-worker`` SIGKILLs a
   ``db_worker`` (started with the crowd, with generation jobs queued) 60 % of the way
   and starts another.

Phases 2 and 3 count ``--max-duration`` / ``--duration`` seconds from the moment every
rater had its first trial (six requests each: a thousand arriving at once take a while,
printed as the join time); their judgments/s and judge p99 are measured over that window.

Printed per phase: judgments/s (acknowledged, unique keys), latencies (judge, state,
image, the pages), errors by status, the ratio of the judgment ceiling to the bare view's
requests/s, the reconciliation of acknowledged judgments with the database, and how busy
the machine was (load average; CPU of the load generator, gunicorn, PostgreSQL and
everything else). Goals: ≥ 300 judgments/s on 2 cores, judge p99 < 100 ms at 1,000 raters
with 2–6 s think time, ratio ≥ 0.5. The machine may be shared: the numbers are one run's,
printed next to the goals; only the reconciliation decides the exit status.

    .venv/bin/python bench/load.py [--db sqlite|postgres] [--raters 1000] [--think 2:6]
        [--duration 60] [--max-raters 100] [--max-duration 30] [--kill-web [all|workers]]
        [--kill-worker] [--trials 100]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "load")]

from harness import (  # noqa: E402  (tests/load is put on the path above)
    RETRY_STATUSES,
    Clock,
    Gunicorn,
    Ledger,
    RaterPlan,
    Reconciliation,
    Sample,
    children,
    cpu_seconds,
    free_port,
    reconcile,
    run_bare,
    run_raters,
)

GOAL_JUDGMENTS_PER_S = 300.0
GOAL_JUDGE_P99_MS = 100.0
GOAL_RATIO = 0.5
# A crowd session as real studies run them: JPEG AIC-3's test of JPEG AI had 142 (boosted)
# and ~109 (plain) triplets per assignment, the HiFiC user study ~360 comparisons per rater
# (../shared/datasets/aic3, pairwise/hific_userstudy.csv). Shorter sessions weigh the
# arrival pages (six requests per participant) more: --trials 20 shows that case.
TRIALS_PER_RATER = 100
WORKER_IMAGES = 8  # 768×512, × jpeg/webp × 2 targets: a few minutes of work for the worker
CEILING_GUESS_PER_S = 600  # sizes the study for the max-throughput phase
OUTAGE_GRACE_S = 2.0  # after the server answers again, stragglers still fail
PAGE_KINDS = ("join", "consent", "instructions", "page")
RETRIED = RETRY_STATUSES | {0}  # answers the raters retry; latencies count the others


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--pg-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a database of the server where perceptlab_load_<pid> is created and dropped",
    )
    parser.add_argument("--raters", type=int, default=1000, help="the crowd (0 skips it)")
    parser.add_argument(
        "--think", type=seconds_range, default=(2.0, 6.0), help="seconds, LOW:HIGH (uniform)"
    )
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds of rating once all joined"
    )
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds to start the crowd")
    parser.add_argument("--max-raters", type=int, default=100, help="max-throughput phase")
    parser.add_argument("--max-duration", type=float, default=30.0, help="0 skips it")
    parser.add_argument("--bare-duration", type=float, default=10.0, help="0 skips it")
    parser.add_argument("--method", choices=["2afc", "acr", "dcr"], default="2afc")
    parser.add_argument(
        "--trials", type=int, default=TRIALS_PER_RATER, help="trials per rater (session length)"
    )
    parser.add_argument("--images", type=int, default=24, help="images of the study")
    parser.add_argument(
        "--workers", type=int, default=(os.cpu_count() or 1) + 1, help="default: cores + 1"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument(
        "--kill-web",
        nargs="?",
        const="all",
        choices=["all", "workers"],
        help="SIGKILL gunicorn (master and workers, or the workers) 40 %% into the crowd",
    )
    parser.add_argument(
        "--kill-worker", action="store_true", help="SIGKILL a busy db_worker 60 %% in"
    )
    return parser.parse_args()


def seconds_range(text: str) -> tuple[float, float]:
    """``LOW:HIGH`` (or one number) in seconds, 0 ≤ LOW ≤ HIGH."""
    low, _, high = text.partition(":")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LOW:HIGH in seconds") from None
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: needs 0 ≤ LOW ≤ HIGH")
    return bounds


# -- the database, the study, the processes ------------------------------------------------


@dataclass(frozen=True)
class Database:
    url: str
    admin_url: str = ""  # PostgreSQL: where to drop it from

    @classmethod
    def create(cls, kind: str, *, workdir: Path, pg_url: str) -> Database:
        if kind == "sqlite":
            return cls(f"sqlite:///{workdir / 'load.sqlite3'}")
        import psycopg

        name = f"perceptlab_load_{os.getpid()}"
        with psycopg.connect(pg_url, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name}")
            connection.execute(f"CREATE DATABASE {name}")
        return cls(pg_url.rsplit("/", 1)[0] + f"/{name}", admin_url=pg_url)

    def drop(self) -> None:
        if not self.admin_url:
            return
        import psycopg

        name = self.url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "perceptlab.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def build_study(*, method: str, images: int, slots: int, trials: int) -> Any:
    """A live study (jpeg and webp at 0.5 and 1 bpp) with at least ``slots`` judgment
    slots in all."""
    from studykit import make_study

    from perceptlab.studies.models import Item, Study

    study = make_study(method, images=images, trials_per_session=trials)
    items = study.items.filter(kind=Item.Kind.TEST).count()
    fields = {
        "judgments_per_item": math.ceil(slots / items),
        "trials_per_session": min(trials, items),
    }
    Study.objects.filter(pk=study.pk).update(**fields)
    study.refresh_from_db()
    return study


def enqueue_worker_jobs(images: int) -> list[Any]:
    """Generation jobs for the worker: another study's, of 768×512 images (seconds each)."""
    from studykit import make_study, synthetic_set

    from perceptlab.codecs.tasks import enqueue_jobs
    from perceptlab.studies import stimuli

    study = make_study("2afc", build=False)
    study.image_set = synthetic_set(images, width=768, height=512)
    study.save(update_fields=["image_set"])
    jobs = stimuli.plan_generation(study=study)
    enqueue_jobs(jobs)
    return jobs


class DbWorker:
    """``manage.py db_worker`` in a process group of its own."""

    def __init__(self, *, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "manage.py", "db_worker", "--no-startup-delay", "--no-reload"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def pids(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.process.pid, *children(self.process.pid)]

    def kill(self) -> None:
        """SIGKILL, as a machine losing power would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def raise_fd_limit() -> None:
    """A thousand raters keep a few connections each, on both ends."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- how busy the machine was --------------------------------------------------------------


@dataclass(frozen=True)
class Busy:
    """CPU seconds used so far: the machine (all cores), this process, and process groups."""

    machine: float
    idle: float
    generator: float
    groups: dict[str, dict[int, float]]  # name → pid → CPU seconds
    load: float  # 1-minute load average


def busy_now(groups: dict[str, list[int]]) -> Busy:
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    own = resource.getrusage(resource.RUSAGE_SELF)
    return Busy(
        machine=sum(fields[:8]) / ticks,
        idle=(fields[3] + fields[4]) / ticks,
        generator=own.ru_utime + own.ru_stime,
        groups={name: cpu_seconds(pids) for name, pids in groups.items()},
        load=os.getloadavg()[0],
    )


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on the machine (other users' queries included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def busy_line(before: Busy, after: Busy) -> str:
    """Shares of the machine's CPU time (all cores) between two moments; processes
    started meanwhile count from their start."""
    total = max(after.machine - before.machine, 1e-9)
    busy = total - (after.idle - before.idle)
    shares = {"load generator": after.generator - before.generator}
    for name, now in after.groups.items():
        then = before.groups.get(name, {})
        shares[name] = sum(seconds - then.get(pid, 0.0) for pid, seconds in now.items())
    other = max(busy - sum(shares.values()), 0.0)
    parts = ", ".join(f"{name} {100 * v / total:.0f} %" for name, v in shares.items())
    return (
        f"machine: load average {before.load:.2f} → {after.load:.2f} (1 min), CPU busy "
        f"{100 * busy / total:.0f} % of {os.cpu_count()} cores: {parts}, "
        f"other {100 * other / total:.0f} %"
    )


def server_cpu_line(before: Busy, after: Busy, ledger: Ledger, since: float) -> str:
    """The server's CPU time (gunicorn, and PostgreSQL) per request answered and per
    acknowledged judgment: what the speed work changes, and steadier than a rate on a
    machine shared with other jobs (it does not depend on how much CPU was left over)."""

    def used(name: str) -> float:
        then = before.groups.get(name, {})
        return sum(s - then.get(pid, 0.0) for pid, s in after.groups.get(name, {}).items())

    web, database = used("gunicorn"), used("postgres")
    requests = sum(1 for s in ledger.samples if s.started >= since and s.status)
    judgments = sum(1 for ack in ledger.acknowledged.values() if ack.at >= since)
    per_request = 1000 * (web + database) / max(requests, 1)
    line = f"server CPU: {per_request:.2f} ms per request answered ({requests})"
    if judgments:
        web_ms, database_ms = 1000 * web / judgments, 1000 * database / judgments
        line += (
            f", {web_ms + database_ms:.2f} ms per acknowledged judgment "
            f"(gunicorn {web_ms:.2f} + PostgreSQL {database_ms:.2f})"
        )
    return line


# -- numbers -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (NaN for no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def latency(samples: list[Sample], name: str) -> str:
    done = [s.ms for s in samples if s.status not in RETRIED]
    if not done:
        return f"{name}: none"
    p = {q: percentile(done, q) for q in (50, 95, 99)}
    return (
        f"{name} p50 {p[50]:.0f} ms, p95 {p[95]:.0f} ms, p99 {p[99]:.0f} ms "
        f"(max {max(done):.0f} ms, n={len(done)})"
    )


def errors_line(samples: list[Sample], ledger: Ledger) -> str:
    failed = [s for s in samples if s.status == 0 or s.status >= 400]
    counts = Counter(f"{s.kind} {s.status or s.error}" for s in failed)
    outside = [s for s in failed if s.status in RETRIED and not ledger.in_outage(s)]
    listed = ", ".join(f"{what} ×{n}" for what, n in counts.most_common()) or "none"
    return f"errors: {listed}; 5xx/connection failures outside fault windows: {len(outside)}"


def judgments_per_s(ledger: Ledger, since: float, until: float) -> float:
    acked = sum(1 for ack in ledger.acknowledged.values() if since <= ack.at < until)
    return acked / max(until - since, 1e-9)


def phase_report(ledger: Ledger, clock: Clock, rate: str) -> list[str]:
    """A rater phase's numbers: the arrival (start → every rater had its first trial),
    then the rating (→ the end of the phase, answers retried after the deadline
    included)."""
    joined_at = clock.rating_from or clock.started
    arriving = [s for s in ledger.samples if clock.started <= s.started < joined_at]
    rating = [s for s in ledger.samples if s.started >= joined_at]
    seconds = max(time.monotonic() - joined_at, 1e-9)
    answered = sum(1 for s in rating if s.status not in RETRIED)
    return [
        f"judgments/s (acknowledged, unique keys): {rate}",
        latency([s for s in arriving if s.kind in PAGE_KINDS], "arrival: pages (join/consent/…)"),
        f"rating: requests answered, all kinds: {answered / seconds:.0f}/s",
        latency([s for s in rating if s.kind == "judge"], "rating: judge"),
        latency([s for s in rating if s.kind == "state"], "rating: state"),
        latency([s for s in rating if s.kind == "image"], "rating: image"),
        latency([s for s in rating if s.kind in PAGE_KINDS], "rating: pages (new participants)"),
        errors_line([*arriving, *rating], ledger),
    ]


def ledger_line(ledger: Ledger) -> str:
    finished = ", ".join(f"{state} {n}" for state, n in ledger.participants.most_common())
    rejected = dict(ledger.rejected) or "none"
    return (
        f"participants: {finished}; deliberate duplicates sent {ledger.duplicates_sent}, "
        f"answered as duplicates {ledger.duplicates_confirmed}; reloads {ledger.reloads} "
        f"(showing another trial: {ledger.reload_mismatches}); judge refusals {rejected}; "
        f"requests given up: {len(ledger.abandoned)}"
    )


# -- phases ----------------------------------------------------------------------------------


@dataclass
class Rig:
    """What one benchmark run drives and records."""

    args: argparse.Namespace
    server: Gunicorn
    worker: DbWorker | None
    study_id: int
    invite: str
    jobs: list[Any]
    ledger: Ledger = field(default_factory=Ledger)
    notes: list[str] = field(default_factory=list)  # what the faults did

    def groups(self) -> dict[str, list[int]]:
        found = {"gunicorn": self.server.pids(), "postgres": postgres_pids()}
        if self.worker is not None:
            found["db_worker"] = self.worker.pids()
        return found

    @contextmanager
    def measured(self, lines: list[str]) -> Iterator[None]:
        """Appends how busy the machine was meanwhile. The processes are sampled every
        second, so one that ended (a killed or recycled worker) counts to its last sample."""
        before = busy_now(self.groups())
        since = time.monotonic()
        seen: dict[str, dict[int, float]] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                for name, pids in self.groups().items():
                    seen.setdefault(name, {}).update(cpu_seconds(pids))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join()
        after = busy_now(self.groups())
        for name, last in seen.items():
            after.groups[name] = {**last, **after.groups.get(name, {})}
        lines.append(busy_line(before, after))
        lines.append(server_cpu_line(before, after, self.ledger, since))


async def bare_phase(rig: Rig) -> float:
    args = rig.args
    lines: list[str] = []
    started = time.monotonic()
    with rig.measured(lines):
        await run_bare(
            base_url=rig.server.base_url,
            ledger=rig.ledger,
            clients=args.max_raters,
            duration_s=args.bare_duration,
        )
    samples = rig.ledger.of("healthz", since=started)
    rate = sum(1 for s in samples if s.status == 200) / args.bare_duration
    print(f"\n== bare view: {args.max_raters} clients GET /healthz for {args.bare_duration:g} s")
    print(f"requests/s: {rate:.0f}", latency(samples, "healthz"), sep="\n")
    print(errors_line(samples, rig.ledger), *lines, sep="\n")
    return rate


async def max_phase(rig: Rig) -> float:
    args = rig.args
    lines: list[str] = []
    with rig.measured(lines):
        clock = await run_raters(
            base_url=rig.server.base_url,
            invite=rig.invite,
            plan=RaterPlan(method=args.method, think_s=(0.0, 0.0)),
            ledger=rig.ledger,
            raters=args.max_raters,
            duration_s=args.max_duration,
            after_joining=True,
        )
    print(f"\n== max throughput: {args.max_raters} raters, no think time, {args.max_duration:g} s")
    rate, window = rating_window(rig.ledger, clock)
    print(*phase_report(rig.ledger, clock, window), *lines, sep="\n")
    return rate


async def crowd_phase(rig: Rig) -> tuple[float, list[float]]:
    args = rig.args
    lines: list[str] = []
    low, high = args.think
    with rig.measured(lines):
        clock = await run_raters(
            base_url=rig.server.base_url,
            invite=rig.invite,
            plan=RaterPlan(method=args.method, think_s=args.think),
            ledger=rig.ledger,
            raters=args.raters,
            duration_s=args.duration,
            ramp_s=args.ramp,
            after_joining=True,
            during=lambda clock: faults(rig, clock),
        )
    offered = args.raters / max((low + high) / 2, 1e-3)
    print(
        f"\n== crowd: {args.raters} raters arriving over {args.ramp:g} s, then {args.duration:g} s "
        f"of rating, think {low:g}–{high:g} s (offered ≈ {offered:.0f} judgments/s)"
    )
    rate, window = rating_window(rig.ledger, clock)
    print(*phase_report(rig.ledger, clock, window), *rig.notes, *lines, sep="\n")
    judge = [
        s.ms
        for s in rig.ledger.of("judge", since=clock.rating_from or clock.started)
        if s.status not in RETRIED and not rig.ledger.in_outage(s)
    ]  # the goal's p99: rating, fault windows left out
    return rate, judge


def rating_window(ledger: Ledger, clock: Clock) -> tuple[float, str]:
    """Judgments/s once every rater had joined, and how that window is described."""
    joined_at = clock.rating_from or clock.started
    rate = judgments_per_s(ledger, joined_at, clock.deadline)
    joined = (
        f"all {clock.raters} raters had their first trial"
        if clock.joined == clock.raters
        else f"{clock.joined} of {clock.raters} raters had their first trial (join window over)"
    )
    window = (
        f"{rate:.1f} over {clock.deadline - joined_at:.0f} s of rating; "
        f"{joined} {joined_at - clock.started:.1f} s after the first arrived"
    )
    return rate, window


# -- faults ----------------------------------------------------------------------------------


async def faults(rig: Rig, clock: Clock) -> None:
    """The crowd's fault schedule, once every rater has joined: the worker starts, then
    gunicorn is killed 40 % of the way in and the worker 60 % of the way in."""
    while clock.rating_from is None:
        await asyncio.sleep(0.5)
    if rig.worker is not None:
        rig.worker.start()
    await asyncio.gather(kill_web(rig, clock), kill_worker(rig))


async def kill_web(rig: Rig, clock: Clock) -> None:
    mode = rig.args.kill_web
    if not mode:
        return
    await asyncio.sleep(rig.args.duration * 0.4)
    killed = time.monotonic()
    back = await asyncio.to_thread(restart_web, rig.server, workers_only=mode == "workers")
    rig.ledger.outages.append((killed, killed + back + OUTAGE_GRACE_S))
    what = "its workers" if mode == "workers" else "master and workers"
    rating_for = killed - (clock.rating_from or clock.started)
    rig.notes.append(
        f"fault: gunicorn ({what}) SIGKILLed {rating_for:.0f} s into the rating; "
        f"answering again {back:.1f} s later"
    )


def restart_web(server: Gunicorn, *, workers_only: bool) -> float:
    """Kill, bring back, and return the seconds until /healthz answered again."""
    started = time.monotonic()
    server.kill(workers_only=workers_only)
    if workers_only:
        server.wait_ready(120)  # the master forks new workers by itself
    else:
        server.start()
    return time.monotonic() - started


async def kill_worker(rig: Rig) -> None:
    if rig.worker is None:
        return
    await asyncio.sleep(rig.args.duration * 0.6)
    counts = await asyncio.to_thread(job_counts, rig.jobs)
    if counts["running"] == 0:
        rig.notes.append(f"fault: db_worker not killed, it had nothing to do ({counts})")
        return
    rig.worker.kill()
    before = await asyncio.to_thread(reconcile_now, rig)  # the new worker repairs counters
    rig.worker.start()
    rig.notes.append(
        f"fault: db_worker SIGKILLed with jobs {counts}; a new one started; just before, "
        f"reconciliation {'OK' if before.ok else 'FAILED'} ({len(before.slot_mismatches)} "
        f"slot counters off)"
    )


def job_counts(jobs: list[Any]) -> dict[str, int]:
    from django.db import connections

    from perceptlab.codecs.generation import progress

    try:
        return progress(jobs)
    finally:
        connections.close_all()  # this thread's connection


# -- main ----------------------------------------------------------------------------------


async def benchmark(rig: Rig) -> bool:
    args = rig.args
    bare = await bare_phase(rig) if args.bare_duration else float("nan")
    ceiling = float("nan")
    if args.max_duration:
        ceiling = await max_phase(rig)
        if args.raters:  # the crowd's follows; without one, the closing check is this phase's
            print(*(await asyncio.to_thread(reconcile_lines, rig)), sep="\n")
    crowd_rate, judge_ms = await crowd_phase(rig) if args.raters else (float("nan"), [])
    lines = await asyncio.to_thread(reconcile_lines, rig)
    print(
        *lines, ledger_line(rig.ledger), log_problems(rig.server.log, rig.server.workers), sep="\n"
    )
    print("\n== against the goals")
    print(f"judgments/s, max throughput: {ceiling:.1f}  (goal ≥ {GOAL_JUDGMENTS_PER_S:.0f})")
    print(f"judgments/s, crowd: {crowd_rate:.1f}  (what the crowd offered, not a ceiling)")
    print(
        f"judge p99 in the crowd, fault windows left out: {percentile(judge_ms, 99):.0f} ms  "
        f"(goal < {GOAL_JUDGE_P99_MS:.0f} ms at 1,000 raters, think 2–6 s)"
    )
    print(
        f"max-throughput judgments/s ÷ bare /healthz requests/s: {ceiling / bare:.2f}  "
        f"(goal ≥ {GOAL_RATIO})"
    )
    return lines[0].endswith("OK")


def reconcile_now(rig: Rig) -> Reconciliation:
    from django.db import connections

    try:
        return reconcile(study_id=rig.study_id, ledger=rig.ledger)
    finally:
        connections.close_all()  # this thread's connection


def reconcile_lines(rig: Rig) -> list[str]:
    try:
        return reconcile_now(rig).lines()
    except Exception as exc:  # e.g. a database the run left unreadable
        return [f"reconciliation: FAILED, the database could not be read: {exc!r}"]


def log_problems(log: Path, workers: int) -> str:
    """Tracebacks, errors and worker timeouts in gunicorn's log (the app logs at WARNING),
    and how many workers were started after the first ones (recycled after
    ``max_requests``, or replacing killed ones)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    marks = ("Traceback", "[ERROR]", "WORKER TIMEOUT", "[CRITICAL]")
    found = [line for line in lines if any(mark in line for mark in marks)]
    boots = sum(1 for line in lines if "Booting worker" in line)
    return (
        f"gunicorn log: {len(found)} error lines; workers started after the first "
        f"{workers}: {boots - workers}" + "".join(f"\n  {x}" for x in found[:5])
    )


def main() -> int:
    args = parse_args()
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="perceptlab-load-"))
    database = Database.create(args.db, workdir=workdir, pg_url=args.pg_url)
    env = {
        "DATABASE_URL": database.url,
        "PERCEPTLAB_VAR_DIR": str(workdir),
        "PERCEPTLAB_MEDIA_ROOT": str(workdir / "media"),
        "PERCEPTLAB_TASKS": "database",
        "PERCEPTLAB_LEASE_SECONDS": "10",
        "PERCEPTLAB_LOG_LEVEL": "WARNING",
        # The worker repairs slot counters at its start and then every this many seconds;
        # reconciliation checks them before a restarted worker gets the chance.
        "PERCEPTLAB_MAINTENANCE_SECONDS": "3600",
    }
    server = Gunicorn(
        port=args.port or free_port(),
        env=env,
        workers=args.workers,
        threads=args.threads,
        log=workdir / "gunicorn.log",
    )
    worker = DbWorker(env=env, log=workdir / "worker.log") if args.kill_worker else None
    status = 1
    try:
        status = run(args, env, database, server, worker)
        return status
    finally:
        server.stop()
        if worker is not None:
            worker.kill()
        if status == 0:
            database.drop()
            shutil.rmtree(workdir, ignore_errors=True)
        else:  # the logs, and the SQLite file or the PostgreSQL database, for a post-mortem
            print(f"kept for inspection: {workdir} (gunicorn.log), {database.url}")


def run(
    args: argparse.Namespace,
    env: dict[str, str],
    database: Database,
    server: Gunicorn,
    worker: DbWorker | None,
) -> int:
    setup_django(env)
    mean_think = max(sum(args.think) / 2, 0.5)
    slots = 1.5 * (args.raters * args.duration / mean_think)
    slots += 1.5 * CEILING_GUESS_PER_S * args.max_duration
    slots = max(slots, 2 * max(args.raters, args.max_raters) * args.trials)
    built = time.monotonic()
    study = build_study(
        method=args.method, images=args.images, slots=int(slots), trials=args.trials
    )
    jobs = enqueue_worker_jobs(WORKER_IMAGES) if worker is not None else []
    print(
        f"study {study.name}: {study.method}, {study.items.count()} items × "
        f"{study.judgments_per_item} "
        f"judgments, {study.trials_per_session} trials per rater; built in "
        f"{time.monotonic() - built:.0f} s on {args.db} ({database.url.split('@')[-1]})"
    )
    print(
        f"gunicorn ({' '.join(server.command()[2:])}): {server.workers} gthread workers × "
        f"{server.threads} threads"
    )
    print(f"up in {server.start():.1f} s at {server.base_url}; commit {git_commit()}")
    if jobs:
        print(f"{len(jobs)} generation jobs queued for a db_worker started with the rating")
    rig = Rig(args, server, worker, study.pk, str(study.invite), jobs)
    ok = asyncio.run(benchmark(rig))
    if jobs:
        print(f"generation jobs at the end of the crowd: {job_counts(jobs)}")
        print(finish_jobs(env, jobs))
    return 0 if ok else 1


def finish_jobs(env: dict[str, str], jobs: list[Any], *, within_s: float = 120.0) -> str:
    """After the run: reclaim the killed worker's job once its lease lapsed (as the next
    maintenance pass would) and wait for the worker to finish every job."""
    time.sleep(int(env["PERCEPTLAB_LEASE_SECONDS"]))
    reclaim = subprocess.run(
        [sys.executable, "manage.py", "reclaim_jobs"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    give_up = time.monotonic() + within_s
    while time.monotonic() < give_up:
        counts = job_counts(jobs)
        if counts["pending"] == counts["running"] == 0:
            break
        time.sleep(2)
    failed = [line for line in reclaim.stderr.splitlines() if line.startswith("FAILED")]
    said = "; ".join([reclaim.stdout.strip(), *failed])
    return f"manage.py reclaim_jobs: {said}\ngeneration jobs after it: {counts}"


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    changes = " + uncommitted changes" if dirty else ""
    return f"{head}{changes}, {time.strftime('%Y-%m-%d %H:%M %Z')}"


if __name__ == "__main__":
    sys.exit(main())
