// The answer queue's acknowledge and retry rules (perceptlab/studies/static/studies/queue.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createBackoff, createQueue, outcomeOf } from "../../../perceptlab/studies/static/studies/queue.js";
import { FakeStorage, fakeClock, fakeFetch, fakeTimers, settle } from "./fakes.mjs";

const CODE = "0b8a0c5e-1111-4222-8333-444455556666";
const STORAGE_KEY = "perceptlab.pending." + CODE;

function setup({ script = [], storage = new FakeStorage(), clock = fakeClock(), timers = fakeTimers() } = {}) {
  const { fetch, calls } = fakeFetch(script);
  const responses = [];
  const connection = [];
  const backoff = createBackoff({ setTimer: timers.setTimer, clearTimer: timers.clearTimer });
  const queue = createQueue({
    code: CODE,
    url: "/judge",
    fetch,
    storage,
    csrfToken: () => "token",
    wallClock: clock.now,
    backoff,
    onResponse: (data, status) => responses.push(status),
    onConnection: (ok) => connection.push(ok),
  });
  return { queue, calls, responses, connection, storage, clock, timers };
}

test("the status codes map to the acknowledge rules", () => {
  for (const status of [200, 201, 204, 400, 409, 410, 422]) assert.equal(outcomeOf(status), "ack", status);
  for (const status of [0, 408, 429, 500, 502, 503]) assert.equal(outcomeOf(status), "retry", status);
  assert.equal(outcomeOf(403), "expired");
  assert.equal(outcomeOf(404), "gone");
});

test("an acknowledged answer leaves the queue and the storage", async () => {
  const { queue, calls, storage } = setup({ script: [200] });
  queue.push({ position: 3, score: 4, view_ms: 2100 });
  assert.ok(storage.getItem(STORAGE_KEY).includes('"position":3'));
  assert.equal(await queue.flush(), "empty");
  assert.equal(queue.length, 0);
  assert.equal(storage.getItem(STORAGE_KEY), null);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].init.headers["X-CSRFToken"], "token");
  assert.equal(calls[0].body.score, 4);
  assert.equal(calls[0].body.answered, undefined); // the server gets age_ms instead
  assert.match(calls[0].body.key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test("an answer refused for good (a 4xx other than 403/408/429) is dropped, not resent", async () => {
  const { queue, calls } = setup({ script: [{ status: 409, body: { ok: false, code: "conflict" } }, 200] });
  queue.push({ position: 0, score: 1 });
  queue.push({ position: 1, score: 2 });
  assert.equal(await queue.flush(), "empty");
  assert.deepEqual(calls.map((c) => c.body.position), [0, 1]);
});

for (const failure of [500, 503, 408, 429, "offline"]) {
  test(`a ${failure} keeps the answer and retries it with growing backoff`, async () => {
    const { queue, calls, timers, connection, storage } = setup({ script: [failure, failure, 200] });
    queue.push({ position: 0, score: 5 });
    const done = queue.flush();
    await settle();
    assert.equal(calls.length, 1);
    assert.equal(queue.length, 1);
    assert.ok(storage.getItem(STORAGE_KEY));
    assert.deepEqual(timers.delays, [1000]);
    timers.fireAll();
    await settle();
    assert.equal(calls.length, 2);
    assert.deepEqual(timers.delays, [2000]);
    timers.fireAll();
    assert.equal(await done, "empty");
    assert.equal(calls.length, 3);
    assert.equal(new Set(calls.map((c) => c.body.key)).size, 1); // the same idempotency key
    assert.deepEqual(connection, [false, false, true]);
  });
}

test("the online event retries at once instead of sleeping out the backoff", async () => {
  const { queue, calls, timers } = setup({ script: ["offline", "offline", "offline", 200] });
  queue.push({ position: 0, score: 5 });
  const done = queue.flush();
  await settle();
  timers.fireAll(); // 1 s
  await settle();
  timers.fireAll(); // 2 s
  await settle();
  assert.deepEqual(timers.delays, [4000]);
  queue.wake(); // window "online"
  assert.equal(await done, "empty");
  assert.equal(calls.length, 4);
  assert.deepEqual(timers.delays, []); // the 4 s timer was cancelled
});

test("answers survive a reload in order and keep ageing from when they were given", async () => {
  const storage = new FakeStorage();
  const clock = fakeClock();
  const before = setup({ script: ["offline"], storage, clock });
  before.queue.push({ position: 0, score: 2 });
  clock.advance(1500);
  before.queue.push({ position: 1, score: 3 });
  before.queue.flush();
  await settle();
  assert.equal(before.calls[0].body.age_ms, 1500); // first try: 1.5 s after the answer
  clock.advance(8000); // the page is reloaded 8 s later

  const after = setup({ script: [200, 200], storage, clock });
  assert.equal(after.queue.length, 2);
  assert.equal(await after.queue.flush(), "empty");
  assert.deepEqual(after.calls.map((c) => c.body.position), [0, 1]);
  assert.deepEqual(after.calls.map((c) => c.body.age_ms), [9500, 8000]);
  assert.equal(after.calls[0].body.key, before.calls[0].body.key);
  assert.equal(storage.getItem(STORAGE_KEY), null);
});

test("a retry after going offline carries the original answer's age", async () => {
  const clock = fakeClock();
  const { queue, calls, timers } = setup({ script: ["offline", 200], clock });
  queue.push({ position: 0, score: 2 });
  queue.flush();
  await settle();
  clock.advance(30_000);
  timers.fireAll();
  await settle();
  assert.deepEqual(calls.map((c) => c.body.age_ms), [0, 30_000]);
});

test("a monotonic clock, where given, times answers made on this page", async () => {
  const storage = new FakeStorage();
  const wall = fakeClock();
  let mono = 100;
  const { fetch, calls } = fakeFetch([200]);
  const queue = createQueue({ code: CODE, url: "/judge", fetch, storage, wallClock: wall.now, monoClock: () => mono });
  queue.push({ position: 0, score: 1 });
  wall.advance(-60_000); // the system clock was set back a minute
  mono += 250;
  await queue.flush();
  assert.equal(calls[0].body.age_ms, 250);
});

test("a 403 stops without dropping the answer; a reload sends it again", async () => {
  const storage = new FakeStorage();
  const first = setup({ script: [{ status: 403, body: { detail: "CSRF" } }], storage });
  first.queue.push({ position: 0, score: 4 });
  first.queue.push({ position: 1, score: 4 });
  assert.equal(await first.queue.flush(), "stopped");
  assert.deepEqual(first.responses, [403]);
  assert.equal(first.queue.length, 2);
  assert.equal(await first.queue.flush(), "stopped"); // no resending into the same 403
  assert.equal(first.calls.length, 1);
  const reloaded = setup({ script: [200, 200], storage });
  assert.equal(await reloaded.queue.flush(), "empty");
  assert.deepEqual(reloaded.calls.map((c) => c.body.position), [0, 1]);
});

test("a 404 (the session is gone) drops everything and stops", async () => {
  const { queue, storage } = setup({ script: [404] });
  queue.push({ position: 0, score: 4 });
  queue.push({ position: 1, score: 4 });
  assert.equal(await queue.flush(), "stopped");
  assert.equal(queue.length, 0);
  assert.equal(storage.getItem(STORAGE_KEY), null);
});

test("a duplicate key acknowledged as a duplicate is dropped once, its neighbour kept", async () => {
  const storage = new FakeStorage();
  // The page sent position 0, the server stored it, and the page reloaded before the reply.
  const before = setup({ script: ["offline"], storage });
  before.queue.push({ position: 0, score: 1 });
  before.queue.push({ position: 1, score: 2 });
  const duplicate = { status: 200, body: { ok: true, duplicate: true } };
  const after = setup({ script: [duplicate, "offline", 200], storage });
  after.queue.flush();
  await settle();
  assert.equal(after.queue.length, 1);
  assert.equal(after.queue.entries()[0].position, 1);
  after.timers.fireAll();
  await settle();
  assert.equal(after.queue.length, 0);
  assert.deepEqual(after.calls.map((c) => c.body.position), [0, 1, 1]);
});

test("answers pushed while sending go out in the same run, in order", async () => {
  const { queue, calls } = setup({ script: [200, 200, 200] });
  queue.push({ position: 0, score: 1 });
  const first = queue.flush();
  queue.push({ position: 1, score: 1 });
  const second = queue.flush();
  assert.equal(first, second);
  assert.equal(await first, "empty");
  queue.push({ position: 2, score: 1 });
  assert.equal(await queue.flush(), "empty"); // a new run once the last one ended
  assert.deepEqual(calls.map((c) => c.body.position), [0, 1, 2]);
});

test("unreadable storage starts an empty queue", () => {
  const storage = new FakeStorage();
  storage.setItem(STORAGE_KEY, "{not json");
  assert.equal(setup({ storage }).queue.length, 0);
  storage.setItem(STORAGE_KEY, JSON.stringify({ not: "a list" }));
  assert.equal(setup({ storage }).queue.length, 0);
});
