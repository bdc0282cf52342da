/*
 * The answer queue: answers not yet acknowledged by the server, oldest first, mirrored in
 * localStorage so that a lost connection or a reload loses nothing.
 *
 * Every answer carries a random idempotency key and the time it was given; each time it is
 * sent (the first time, or a retry after a lost connection or a reload) it carries
 * `age_ms`, how long ago the rater answered, so the server's clock stops at the real
 * answer time and not at the replay.
 *
 * Acknowledge rules: an answer leaves the queue only when the server has decided on it:
 * 2xx (stored, or a duplicate of a stored key), or a 4xx other than 403/408/429 (refused
 * for good: resending cannot help). 5xx, 408, 429 and network errors keep it and retry
 * with backoff; the browser's `online` event cuts the wait short. 403 (the CSRF token or
 * session cookie expired) stops without dropping anything: a reload sends it again. 404
 * (the session is gone) drops everything.
 *
 * No DOM access at import time: storage, fetch and timers are passed in (node tests use
 * fakes).
 */

export const RETRY_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const KEEP = new Set([403, 408, 429]);

/** "ack" | "retry" | "expired" | "gone" for an HTTP status (0: no response at all). */
export function outcomeOf(status) {
  if (status === 0 || status >= 500 || status === 408 || status === 429) return "retry";
  if (status === 403) return "expired";
  if (status === 404) return "gone";
  if (status >= 200 && status < 300) return "ack";
  if (status >= 400 && !KEEP.has(status)) return "ack"; // refused for good
  return "retry"; // 1xx/3xx reaching a fetch caller: not an answer, try again
}

/** Waits between retries, growing along `delays`; `wake()` ends the current wait at once. */
export function createBackoff({ delays = RETRY_MS, setTimer = setTimeout, clearTimer = clearTimeout } = {}) {
  let failures = 0;
  let pending = null; // { timer, resolve } of the current wait
  return {
    get failures() { return failures; },
    wait() {
      const ms = delays[Math.min(failures, delays.length - 1)];
      failures += 1;
      return new Promise((resolve) => {
        const timer = setTimer(() => { pending = null; resolve(); }, ms);
        pending = { timer, resolve };
      });
    },
    wake() {
      if (!pending) return;
      const { timer, resolve } = pending;
      pending = null;
      clearTimer(timer);
      resolve();
    },
    reset() { failures = 0; },
  };
}

/** A version-4 UUID (crypto.randomUUID exists only in secure contexts). */
export function uuid4(random = globalThis.crypto) {
  const bytes = new Uint8Array(16);
  random.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
}

function load(storage, key) {
  try {
    const items = JSON.parse((storage && storage.getItem(key)) || "[]");
    return Array.isArray(items) ? items.filter((item) => item && typeof item.key === "string") : [];
  } catch (error) {
    return [];
  }
}

/**
 * The queue of one session.
 *
 * options:
 *   code: the session code (the storage key is "perceptlab.pending.<code>")
 *   url: where answers are POSTed (JSON)
 *   fetch, storage: window.fetch and window.localStorage (storage may be null)
 *   csrfToken(): the token to send as X-CSRFToken
 *   wallClock(): Date.now (survives a reload); monoClock(): performance.now (this page only)
 *   backoff: a createBackoff() (shared with the app's state polling)
 *   onResponse(data, status): every response the server decided on (ack, expired, gone)
 *   onConnection(ok): false while retrying, true once a request got through again
 */
export function createQueue({
  code,
  url,
  fetch,
  storage = null,
  csrfToken = () => "",
  wallClock = () => Date.now(),
  monoClock = null,
  backoff = createBackoff(),
  onResponse = () => {},
  onConnection = () => {},
}) {
  const storageKey = "perceptlab.pending." + code;
  let items = load(storage, storageKey);
  const answeredMono = new Map(); // key → monoClock() for answers given on this page
  let running = null;
  let stopped = false;

  function save() {
    try {
      if (!storage) return;
      if (items.length) storage.setItem(storageKey, JSON.stringify(items));
      else storage.removeItem(storageKey);
    } catch (error) {
      // Storage disabled or full: the queue still lives in memory for this page.
    }
  }

  function remove(key) {
    items = items.filter((item) => item.key !== key);
    answeredMono.delete(key);
    save();
  }

  function ageMs(entry) {
    if (monoClock && answeredMono.has(entry.key)) {
      return Math.max(0, Math.round(monoClock() - answeredMono.get(entry.key)));
    }
    if (typeof entry.answered !== "number") return 0; // written by an older page
    return Math.max(0, Math.round(wallClock() - entry.answered));
  }

  function body(entry) {
    const { answered, ...fields } = entry;
    return JSON.stringify({ ...fields, age_ms: ageMs(entry) });
  }

  async function post(entry) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRFToken": csrfToken(),
        },
        body: body(entry),
      });
    } catch (error) {
      return { outcome: "retry", status: 0, data: null }; // offline or connection lost
    }
    const data = await response.json().catch(() => null);
    return { outcome: outcomeOf(response.status), status: response.status, data };
  }

  async function run() {
    try {
      return await drain();
    } finally {
      running = null; // before the caller resumes, so a flush() right after starts anew
    }
  }

  async function drain() {
    while (items.length) {
      const entry = items[0];
      const { outcome, status, data } = await post(entry);
      if (outcome === "retry") {
        onConnection(false);
        await backoff.wait();
        continue;
      }
      backoff.reset();
      onConnection(true);
      if (outcome === "expired") {
        stopped = true;
        onResponse(data, status);
        return "stopped";
      }
      if (outcome === "gone") {
        items = [];
        answeredMono.clear();
        save();
        stopped = true;
        onResponse(data, status);
        return "stopped";
      }
      remove(entry.key); // by key: a duplicate acknowledged twice never drops its neighbour
      onResponse(data, status);
    }
    return "empty";
  }

  return {
    get length() { return items.length; },
    /** The entries waiting, oldest first (copies). */
    entries() { return items.map((item) => ({ ...item })); },
    /** Queue one answer (its fields as the server reads them); returns its key. */
    push(fields) {
      const key = fields.key || uuid4();
      const entry = { ...fields, key, answered: wallClock() };
      items.push(entry);
      if (monoClock) answeredMono.set(key, monoClock());
      save();
      return key;
    },
    /**
     * Send everything waiting, oldest first; resolves "empty" once all were acknowledged,
     * "stopped" after a 403/404. Calls made while sending share the one run.
     */
    flush() {
      if (stopped) return Promise.resolve("stopped");
      if (!items.length && !running) return Promise.resolve("empty");
      if (!running) running = run();
      return running;
    },
    /** Retry now (the browser came back online). */
    wake() { backoff.wake(); },
  };
}
