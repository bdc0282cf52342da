// Fakes for the rater modules' node tests: storage, fetch, clocks and timers.

export class FakeStorage {
  constructor() { this.map = new Map(); }
  getItem(key) { return this.map.has(key) ? this.map.get(key) : null; }
  setItem(key, value) { this.map.set(key, String(value)); }
  removeItem(key) { this.map.delete(key); }
}

/** A fetch whose responses are scripted: each item a status, an object {status, body}, or "offline". */
export function fakeFetch(script) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, body: JSON.parse(init.body) });
    const next = script.length ? script.shift() : 200;
    if (next === "offline") throw new TypeError("Failed to fetch");
    const { status, body } = typeof next === "number" ? { status: next, body: {} } : next;
    return { status, json: async () => body };
  };
  return { fetch, calls };
}

/** setTimeout/clearTimeout that only fire when the test says so. */
export function fakeTimers() {
  const timers = new Map();
  let id = 0;
  return {
    setTimer(fn, ms) { id += 1; timers.set(id, { fn, ms }); return id; },
    clearTimer(handle) { timers.delete(handle); },
    get delays() { return [...timers.values()].map((t) => t.ms); },
    fireAll() {
      const due = [...timers.entries()];
      timers.clear();
      due.forEach(([, t]) => t.fn());
    },
  };
}

export function fakeClock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance(ms) { now += ms; } };
}

/** Let pending promise callbacks run. */
export async function settle(rounds = 20) {
  for (let i = 0; i < rounds; i += 1) await new Promise((resolve) => setImmediate(resolve));
}
