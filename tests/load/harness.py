"""Virtual raters for load runs, the gunicorn they run against, and the reconciliation of
what the raters were told with what the database holds.

A virtual rater plays the rater flow over HTTP the way the browser does, with its own
cookie jar and connections: the invitation link (a fresh ``PROLIFIC_PID``), consent,
the screen check (1920×1080 at devicePixelRatio 1), the rating page (whose embedded state
the app starts from), each image once, a trial's together in one request as the page asks
for them (the server marks them cacheable), then one judgment per trial after a think
time, with an occasional reload (the page again, whose state must show the same
trial) and an occasional deliberate second send of an answer. A judgment that meets a
timeout, a connection error, a 5xx, 408 or 429 is sent again with the **same** idempotency
key after ``queue.js``'s waits, until the server answers or ``RaterPlan.retry_for_s`` runs
out (a browser never gives up; a run must end). Every judgment the server acknowledged
(``ok: true``) is kept in the :class:`Ledger` with its key, session and position. When
a participant finishes, the rater starts over as a new participant until the deadline.

:func:`reconcile` then checks the database the server used: every acknowledged key is
stored exactly once, on the session and position it was sent for; nothing is stored
that no rater sent; one judgment per trial; and every item's ``assigned`` equals its
trials holding a slot (never above ``Study.judgments_per_item``).

Django is needed only by :func:`reconcile` (and by callers that build the study); the
raters themselves speak HTTP only.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36 perceptlab-load"
)
SCREEN = {"inner_width": 1920, "inner_height": 1080, "device_pixel_ratio": 1}
# Transient failures, answered by sending again (the same body, the same key) after the
# waits of queue.js's RETRY_MS (jittered by ±25 %, as real clients drift apart).
TRANSIENT = (TimeoutError, aiohttp.ClientError)
RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})
RETRY_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


# -- what a run records ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One HTTP attempt: ``status`` 0 is a timeout or connection error (``error`` names it)."""

    kind: str  # join, consent, instructions, page, state, image, judge, healthz
    started: float  # time.monotonic()
    ms: float
    status: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class Ack:
    """A judgment the server acknowledged (``ok: true``)."""

    session: str  # the session's code
    position: int
    duplicate: bool  # the server said it had this key already
    at: float  # time.monotonic() of the acknowledgment


@dataclass
class Ledger:
    """Everything the raters of one process saw, across phases."""

    samples: list[Sample] = field(default_factory=list)
    sent: set[str] = field(default_factory=set)  # every key sent at least once
    acknowledged: dict[str, Ack] = field(default_factory=dict)
    retried: set[str] = field(default_factory=set)  # keys sent again after a failed attempt
    rejected: Counter[str] = field(default_factory=Counter)  # judge 4xx by the server's code
    participants: Counter[str] = field(default_factory=Counter)  # by final state
    duplicates_sent: int = 0  # deliberate second sends of an acknowledged answer
    duplicates_confirmed: int = 0  # … answered ``ok: true, duplicate: true``
    reloads: int = 0
    reload_mismatches: int = 0  # a reload that showed another trial than the one on screen
    abandoned: list[str] = field(default_factory=list)  # requests given up on, and why
    outages: list[tuple[float, float]] = field(default_factory=list)  # fault windows

    def in_outage(self, sample: Sample) -> bool:
        """The request was under way at some moment of a fault window."""
        ended = sample.started + sample.ms / 1000
        return any(sample.started <= end and ended >= start for start, end in self.outages)

    def of(self, kind: str, since: float = 0.0, until: float = float("inf")) -> list[Sample]:
        return [s for s in self.samples if s.kind == kind and since <= s.started < until]

    def failures_outside_outages(self) -> list[Sample]:
        """Answers retried (5xx, 408, 429), timeouts and connection errors that no
        injected fault explains."""
        return [
            s
            for s in self.samples
            if (s.status == 0 or s.status in RETRY_STATUSES) and not self.in_outage(s)
        ]


@dataclass(frozen=True)
class RaterPlan:
    """How the virtual raters behave."""

    method: str  # the study's method: 2afc answers with a choice, acr/dcr with a score
    think_s: tuple[float, float] = (2.0, 6.0)  # uniform; (0, 0) for the max-throughput phase
    reload_chance: float = 0.03  # per trial, before answering
    duplicate_chance: float = 0.03  # per acknowledged answer
    timeout_s: float = 30.0  # per request (a browser's fetch has none; a run must end)
    retry_for_s: float = 90.0  # how long a failing request is retried before giving up
    scores: tuple[float, ...] = (1, 2, 3, 4, 5)


class GaveUp(Exception):
    """A request still failing when its retry window closed."""

    def __init__(self, kind: str, path: str) -> None:
        super().__init__(f"{kind} {path}: still failing after the retry window")
        self.kind = kind
        self.path = path


class Stopped(Exception):
    """The run's deadline passed before this request (judgments excepted) was sent."""


class Unexpected(Exception):
    """The server answered something the rater flow has no answer to (e.g. a 403)."""

    def __init__(self, kind: str, status: int, body: bytes) -> None:
        super().__init__(f"{kind}: HTTP {status}: {body[:200]!r}")
        self.status = status


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    location: str

    def json(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict), "the rater API answers JSON objects"
        return data


# -- one virtual rater ---------------------------------------------------------------------

RATER_CONFIG = re.compile(
    rb'<script id="rater-config" type="application/json">(.*?)</script>', re.S
)


def initial_state(page: Reply) -> dict[str, Any] | None:
    """The state the rating page carries for its app (``config.initial``, which app.js
    starts from without asking ``state``); None for another page."""
    found = RATER_CONFIG.search(page.body) if page.status == 200 else None
    if found is None:
        return None
    initial = json.loads(found[1])["initial"]
    assert isinstance(initial, dict)
    return initial


@dataclass
class Clock:
    """When a crowd stops rating. Plainly ``duration_s`` after the start; with
    ``after_joining``, ``duration_s`` after the moment every rater had its first trial
    (or ``join_within_s`` after the start, if that comes first): a thousand raters
    arriving at once are a phase of their own, measured apart from the rating."""

    raters: int
    duration_s: float
    after_joining: bool = False
    join_within_s: float = 180.0
    started: float = field(default_factory=time.monotonic)
    joined: int = 0  # raters that had their first trial
    rating_from: float | None = None  # every rater had joined (or the join window closed)
    deadline: float = float("inf")

    def __post_init__(self) -> None:
        if not self.after_joining:
            self.deadline = self.started + self.duration_s

    def rater_joined(self) -> None:
        self.joined += 1
        if self.joined == self.raters:
            self._rating_now()

    async def watch(self) -> None:
        """Close the join window if not every rater made it in time."""
        while self.rating_from is None and time.monotonic() < self.started + self.join_within_s:
            await asyncio.sleep(0.5)
        self._rating_now()

    def _rating_now(self) -> None:
        if self.rating_from is None:
            self.rating_from = time.monotonic()
            if self.after_joining:
                self.deadline = self.rating_from + self.duration_s


class VirtualRater:
    """One browser: its own cookie jar, image cache and connections (up to 4, as a
    browser keeps a few per host); a new participant each time the last one finished."""

    def __init__(
        self, *, base_url: str, invite: str, plan: RaterPlan, ledger: Ledger, clock: Clock
    ) -> None:
        self.invite = invite
        self.plan = plan
        self.ledger = ledger
        self.clock = clock
        self.joined = False
        self.cached: set[str] = set()
        self.http = aiohttp.ClientSession(
            base_url,
            connector=aiohttp.TCPConnector(limit=4, keepalive_timeout=15),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # unsafe: cookies for 127.0.0.1
            timeout=aiohttp.ClientTimeout(total=plan.timeout_s),
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        await self.http.close()

    @property
    def deadline(self) -> float:
        return self.clock.deadline

    async def play(self) -> None:
        """Participants one after another until the clock's deadline; a participant whose
        request failed past its retry window is recorded as abandoned and the next one
        starts. At the deadline a rater stops between requests; only an answer already
        given is still sent to an answer."""
        while time.monotonic() < self.deadline:
            try:
                final = await self._participant()
            except (GaveUp, Unexpected) as exc:
                self.ledger.abandoned.append(str(exc))
                final = "abandoned"
            except Stopped:
                final = "unfinished"
            self.ledger.participants[final] += 1

    async def _participant(self) -> str:
        self.http.cookie_jar.clear()
        self.cached.clear()
        code = await self._join()
        page = f"/r/{code}/"
        await self._call("page", "GET", page)
        await self._call("consent", "POST", page, data={"decision": "agree"})
        await self._call("page", "GET", page)
        await self._call("instructions", "POST", page, data=SCREEN)
        state = initial_state(await self._call("page", "GET", page))
        if state is None:  # not the rating page (finished meanwhile): as the app, ask
            state = (await self._call("state", "GET", f"{page}state")).json()
        if not self.joined:
            self.joined = True
            self.clock.rater_joined()
        while state["trial"] is not None:
            await self._load_images(state)
            think = random.uniform(*self.plan.think_s)
            if time.monotonic() + think >= self.deadline:
                await asyncio.sleep(max(self.deadline - time.monotonic(), 0.0))  # still looking
                return "unfinished"
            await asyncio.sleep(think)
            if random.random() < self.plan.reload_chance:
                await self._reload(page, state["trial"]["position"])
            state = await self._judge(page, state["trial"], view_ms=int(think * 1000))
        await self._call("page", "GET", page)
        return str(state["state"])

    async def _join(self) -> str:
        pid = uuid.uuid4().hex[:24]
        query = f"PROLIFIC_PID={pid}&STUDY_ID=load&SESSION_ID={uuid.uuid4().hex[:24]}"
        reply = await self._call("join", "GET", f"/study/{self.invite}/?{query}")
        if reply.status != 302 or not reply.location.startswith("/r/"):
            raise Unexpected("join", reply.status, reply.body)
        return reply.location.split("/")[2]

    async def _load_images(self, state: dict[str, Any]) -> None:
        """The trial's images and the next trial's (the app preloads it), each once; as
        the page's viewer does, a trial's images it lacks in one request when there are
        several (``/r/<code>/imgs/<t1>.<t2>…``), else one by one."""
        calls = []
        for trial in (state["trial"], state["next"]):
            if trial is None:
                continue
            urls = list(dict.fromkeys(u for u in trial["images"].values() if u is not None))
            missing = [url for url in urls if url not in self.cached]
            self.cached |= set(missing)  # asked for once, even if the next trial repeats it
            if len(missing) > 1:
                base, tokens = (
                    missing[0].rsplit("/img/", 1)[0],
                    [u.rsplit("/", 1)[1] for u in missing],
                )
                calls.append(self._call("image", "GET", f"{base}/imgs/{'.'.join(tokens)}"))
            else:
                calls += [self._call("image", "GET", url) for url in missing]
        # All of them finish (or fail) before a failure ends the participant: none may
        # be left running on a connection the rater is about to close.
        done = await asyncio.gather(*calls, return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _reload(self, page: str, position: int) -> None:
        self.ledger.reloads += 1
        again = initial_state(await self._call("page", "GET", page))
        if again is None or again["trial"] is None or again["trial"]["position"] != position:
            self.ledger.reload_mismatches += 1

    async def _judge(self, page: str, trial: dict[str, Any], *, view_ms: int) -> dict[str, Any]:
        """Send one answer (again, with its key, until the server answers); the server's
        answer carries the session's next state."""
        key = str(uuid.uuid4())
        answered = time.monotonic()
        answer: dict[str, Any] = {"position": trial["position"], "key": key, "flips": 3}
        if self.plan.method == "2afc":
            answer["choice"] = random.choice(["a", "b"])
        else:
            answer["score"] = random.choice(self.plan.scores)

        def body() -> dict[str, Any]:
            age_ms = int((time.monotonic() - answered) * 1000)  # a replay keeps its time
            return {**answer, "view_ms": view_ms, "age_ms": age_ms, "viewing": {}}

        self.ledger.sent.add(key)
        reply = await self._call("judge", "POST", f"{page}judge", body=body, key=key)
        data = self._acknowledge(reply, key, trial["position"], page)
        if data.get("ok") and random.random() < self.plan.duplicate_chance:
            self.ledger.duplicates_sent += 1
            again = self._acknowledge(
                await self._call("judge", "POST", f"{page}judge", body=body, key=key),
                key,
                trial["position"],
                page,
            )
            self.ledger.duplicates_confirmed += bool(again.get("ok") and again.get("duplicate"))
        return data

    def _acknowledge(self, reply: Reply, key: str, position: int, page: str) -> dict[str, Any]:
        try:
            data = reply.json()
        except ValueError:
            raise Unexpected("judge", reply.status, reply.body) from None
        if reply.status == 200 and data.get("ok"):
            code = page.split("/")[2]
            self.ledger.acknowledged[key] = Ack(
                code, position, bool(data.get("duplicate")), time.monotonic()
            )
        else:
            self.ledger.rejected[str(data.get("code", reply.status))] += 1
            if "trial" not in data:
                raise Unexpected("judge", reply.status, reply.body)
        return data

    async def _call(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        data: dict[str, Any] | None = None,
        body: Callable[[], dict[str, Any]] | None = None,
        key: str = "",
    ) -> Reply:
        """One request, repeated after a timeout, connection error, 5xx, 408 or 429
        until it gets another answer or the retry window closes (GaveUp); ``key``: the
        judgment's, noted in ``Ledger.retried`` when it needed more than one attempt."""
        if kind != "judge" and time.monotonic() >= self.deadline:
            raise Stopped
        give_up = time.monotonic() + self.plan.retry_for_s
        if kind != "judge":
            give_up = min(give_up, self.deadline)
        for attempt in range(1_000_000):
            reply = await self.send_once(kind, method, path, data, body() if body else None)
            if reply is not None:
                if reply.status >= 400 and kind != "judge":
                    raise Unexpected(kind, reply.status, reply.body)
                return reply
            if key:
                self.ledger.retried.add(key)
            if time.monotonic() > give_up:
                break
            await asyncio.sleep(
                RETRY_S[min(attempt, len(RETRY_S) - 1)] * random.uniform(0.75, 1.25)
            )
        if kind != "judge" and time.monotonic() >= self.deadline:
            raise Stopped  # the run ended while it was retrying, not the retry window
        raise GaveUp(kind, path)

    async def send_once(
        self,
        kind: str,
        method: str,
        path: str,
        data: dict[str, Any] | None,
        payload: dict[str, Any] | None,
    ) -> Reply | None:
        """One attempt, recorded as a Sample; None for a transient failure."""
        headers = {"X-CSRFToken": self._csrf()} if method == "POST" else {}
        started = time.monotonic()
        status, error, content, location = 0, "", b"", ""
        try:
            async with self.http.request(
                method, path, data=data, json=payload, headers=headers, allow_redirects=False
            ) as response:
                content = await response.read()
                status, location = response.status, response.headers.get("Location", "")
        except TRANSIENT as exc:
            error = type(exc).__name__
        ms = (time.monotonic() - started) * 1000
        self.ledger.samples.append(Sample(kind, started, ms, status, error))
        if status == 0 or status in RETRY_STATUSES:
            return None
        return Reply(status, content, location)

    def _csrf(self) -> str:
        return next((c.value for c in self.http.cookie_jar if c.key == "csrftoken"), "")


# -- runs ------------------------------------------------------------------------------------


async def run_raters(
    *,
    base_url: str,
    invite: str,
    plan: RaterPlan,
    ledger: Ledger,
    raters: int,
    duration_s: float,
    ramp_s: float = 0.0,
    after_joining: bool = False,
    during: Callable[[Clock], Awaitable[Any]] | None = None,
) -> Clock:
    """``raters`` virtual raters, started evenly over ``ramp_s``, rating for
    ``duration_s`` (from the start, or ``after_joining`` from when all had joined: see
    :class:`Clock`); answers in flight at the deadline are still retried to an answer.
    ``during``, if given, is a coroutine function of the clock run alongside (the fault
    schedule).
    Returns the clock, with the run's start, join and deadline times."""
    clock = Clock(raters=raters, duration_s=duration_s, after_joining=after_joining)
    crowd = [
        VirtualRater(base_url=base_url, invite=invite, plan=plan, ledger=ledger, clock=clock)
        for _ in range(raters)
    ]

    async def one(index: int, rater: VirtualRater) -> None:
        await asyncio.sleep(ramp_s * index / max(raters, 1))
        try:
            await rater.play()
        finally:
            await rater.close()

    jobs: list[Awaitable[Any]] = [clock.watch()]
    jobs += [one(index, rater) for index, rater in enumerate(crowd)]
    if during is not None:
        jobs.append(during(clock))
    await asyncio.gather(*jobs)
    return clock


async def run_bare(
    *, base_url: str, ledger: Ledger, clients: int, duration_s: float, path: str = "/healthz"
) -> None:
    """``clients`` loops GETting ``path`` back to back for ``duration_s`` (kind "healthz"),
    each with its own connection, through the same client code as the raters."""
    clock = Clock(raters=clients, duration_s=duration_s)
    plan = RaterPlan(method="", retry_for_s=0.0)

    async def loop() -> None:
        client = VirtualRater(base_url=base_url, invite="", plan=plan, ledger=ledger, clock=clock)
        try:
            while time.monotonic() < clock.deadline:
                await client.send_once("healthz", "GET", path, None, None)
        finally:
            await client.close()

    await asyncio.gather(*(loop() for _ in range(clients)))


# -- the server ----------------------------------------------------------------------------


def database_url(settings_dict: dict[str, Any]) -> str:
    """The ``DATABASE_URL`` (README "Configuration") of a Django database connection."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    if settings_dict["ENGINE"].endswith("postgresql"):
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
    raise ValueError(f"no DATABASE_URL for engine {settings_dict['ENGINE']!r}")


class Gunicorn:
    """gunicorn serving ``perceptlab.wsgi`` on 127.0.0.1, in a process group of its own
    so that a kill can take the master and its workers at once, as a crash would.

    It runs with the production settings (``perceptlab/gunicorn_conf.py``: gthread,
    preloaded app, worker recycling, access log) where that file exists; the flags here
    override the address, the process and thread counts and the keep-alive: the raters
    connect directly, not through a proxy, and close idle connections (after 15 s)
    before the server does, so no request races a server-side close.
    """

    def __init__(
        self, *, port: int, env: dict[str, str], workers: int, threads: int, log: Path
    ) -> None:
        self.port = port
        # The production checks refuse the public development key.
        self.env = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(40), **env}
        self.workers = workers
        self.threads = threads
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        config = ROOT / "perceptlab" / "gunicorn_conf.py"
        return [
            *(sys.executable, "-m", "gunicorn"),
            *(("-c", "python:perceptlab.gunicorn_conf") if config.exists() else ()),
            *("--bind", f"127.0.0.1:{self.port}", "--worker-class", "gthread"),
            *("--workers", str(self.workers), "--threads", str(self.threads)),
            *("--keep-alive", "20", "--worker-connections", "4000", "--backlog", "4096"),
            # The master imports the app once: killed workers come back in a fork's time.
            "--preload",
            "perceptlab.wsgi:application",
        ]

    def start(self, *, ready_within_s: float = 120.0) -> float:
        """Start and wait until /healthz answers; returns the seconds that took."""
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(ready_within_s)
        return time.monotonic() - started

    def wait_ready(self, within_s: float) -> None:
        give_up = time.monotonic() + within_s
        while time.monotonic() < give_up:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode}; see {self.log}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {within_s:g} s; see {self.log}")

    def pids(self) -> list[int]:
        """The master and its workers."""
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.process.pid, *children(self.process.pid)]

    def kill(self, *, workers_only: bool) -> None:
        """SIGKILL the workers (the master starts new ones) or the whole server (then
        :meth:`start` it again)."""
        assert self.process is not None
        if workers_only:
            for pid in children(self.process.pid):
                os.kill(pid, signal.SIGKILL)
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in _proc_stats():
        if int(stat[3]) == pid:
            found.append(int(stat[0]))
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of these processes so far (gone ones left out)."""
    ticks = os.sysconf("SC_CLK_TCK")
    wanted = {str(pid) for pid in pids}
    return {int(s[0]): (int(s[13]) + int(s[14])) / ticks for s in _proc_stats() if s[0] in wanted}


def _proc_stats() -> Iterator[list[str]]:
    """/proc/<pid>/stat of every process, split into fields (the name made one field)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        head, _, tail = raw.rpartition(")")
        yield [head.split(" (", 1)[0], "name", *tail.split()]


# -- reconciliation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reconciliation:
    """What the raters were told against what the database holds (for one study)."""

    acknowledged: int
    stored: int  # judgments of the study
    missing: list[str]  # acknowledged, not stored
    misplaced: list[str]  # acknowledged, stored on another session or position
    unacknowledged: int  # stored, sent, never acknowledged (the answer was lost on the way)
    phantom: list[str]  # stored, never sent by any rater of this ledger
    duplicate_trials: int  # trials with more than one judgment
    duplicate_keys: int  # keys stored more than once
    slot_mismatches: list[str]  # items whose assigned ≠ their trials holding a slot
    over_target: list[str]  # items with more slots taken than judgments_per_item

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.misplaced
            or self.phantom
            or self.duplicate_trials
            or self.duplicate_keys
            or self.slot_mismatches
            or self.over_target
        )

    def lines(self) -> list[str]:
        verdict = "OK" if self.ok else "FAILED"
        kept = self.acknowledged - len(self.missing) - len(self.misplaced)
        return [
            f"reconciliation: {verdict}",
            f"  acknowledged {self.acknowledged}, stored {self.stored}; acknowledged and "
            f"stored exactly once on their own trial {kept}, missing {len(self.missing)}, "
            f"misplaced {len(self.misplaced)}",
            f"  stored but never acknowledged (answer lost on the way): {self.unacknowledged};"
            f" stored but never sent: {len(self.phantom)}",
            f"  trials with two judgments: {self.duplicate_trials}; keys stored twice: "
            f"{self.duplicate_keys}",
            f"  items whose assigned ≠ trials holding a slot: {len(self.slot_mismatches)};"
            f" items past judgments_per_item: {len(self.over_target)}",
            *(f"  {problem}" for problem in self._examples()),
        ]

    def _examples(self) -> list[str]:
        named = {
            "missing": self.missing,
            "misplaced": self.misplaced,
            "phantom": self.phantom,
            "slot": self.slot_mismatches,
            "over target": self.over_target,
        }
        return [f"{name}: {values[:5]}" for name, values in named.items() if values]


def reconcile(*, study_id: int, ledger: Ledger) -> Reconciliation:
    """Check the database against the ledger (see the module docstring)."""
    from django.db.models import Count, F, Q

    from perceptlab.studies.models import Item, Judgment, Study

    study = Study.objects.get(pk=study_id)
    rows = Judgment.objects.filter(trial__session__study=study).values_list(
        "key", "trial__session__code", "trial__position"
    )
    stored: dict[str, tuple[str, int]] = {}
    keys_seen: Counter[str] = Counter()
    for key, code, position in rows:
        stored[str(key)] = (str(code), position)
        keys_seen[str(key)] += 1
    missing = [key for key in ledger.acknowledged if key not in stored]
    misplaced = [
        key
        for key, ack in ledger.acknowledged.items()
        if key in stored and stored[key] != (ack.session, ack.position)
    ]
    unacknowledged = sum(
        1 for key in stored if key in ledger.sent and key not in ledger.acknowledged
    )
    per_trial = Judgment.objects.filter(trial__session__study=study).values("trial_id")
    duplicate_trials = per_trial.annotate(n=Count("id")).filter(n__gt=1).count()
    items = Item.objects.filter(study=study).annotate(
        held=Count("trials", filter=Q(trials__holds_slot=True))
    )
    return Reconciliation(
        acknowledged=len(ledger.acknowledged),
        stored=sum(keys_seen.values()),
        missing=missing,
        misplaced=misplaced,
        unacknowledged=unacknowledged,
        phantom=[key for key in stored if key not in ledger.sent],
        duplicate_trials=duplicate_trials,
        duplicate_keys=sum(1 for n in keys_seen.values() if n > 1),
        slot_mismatches=[
            f"item {i.pk}: assigned {i.assigned}, held {i.held}"
            for i in items.exclude(assigned=F("held"))
        ],
        over_target=[
            f"item {i.pk}: assigned {i.assigned} > {study.judgments_per_item}"
            for i in items.filter(kind=Item.Kind.TEST, assigned__gt=study.judgments_per_item)
        ],
    )
