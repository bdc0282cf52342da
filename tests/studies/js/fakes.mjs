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

/**
 * A DOM element as app.js uses it: dataset, hidden, disabled, textContent, listeners,
 * closest() for "button" and "[data-name]" selectors, and a parent.
 */
export class FakeElement {
  constructor({ tag = "div", testid = null, dataset = {}, parent = null } = {}) {
    this.tag = tag;
    this.dataset = { ...dataset };
    if (testid) this.dataset.testid = testid;
    this.parent = parent;
    this.hidden = false;
    this.disabled = false;
    this.textContent = "";
    this.value = "";
    this.max = 0;
    this.classList = { toggle() {} };
    this.listeners = new Map();
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  dispatch(type, event) {
    (this.listeners.get(type) || []).forEach((fn) => fn(event));
  }

  matches(selector) {
    const attribute = selector.match(/^\[data-([a-z-]+)\]$/);
    if (attribute) {
      const key = attribute[1].replace(/-([a-z])/g, (_, c) => c.toUpperCase());
      return key in this.dataset;
    }
    return this.tag === selector;
  }

  closest(selector) {
    for (let node = this; node; node = node.parent) if (node.matches(selector)) return node;
    return null;
  }

  blur() {}
}

/**
 * The rating page around app.js's Rater: a window (performance clock, requestAnimationFrame
 * run by `frame()`, storage, fetch), a document and the #rater root holding an element for
 * every data-testid in `testids`; answer buttons `answers` = [[testid, dataset]] are the
 * root's ".answer" elements. Elements with a `parents` entry sit inside that element.
 */
export function fakeRaterPage({ testids = [], answers = [], parents = {}, fetch, start = 1000 }) {
  let now = start;
  let frameId = 0;
  const frames = new Map();
  const root = new FakeElement({ testid: "rater" });
  const elements = new Map();
  const make = (testid, tag = "div", dataset = {}) => {
    const element = new FakeElement({ tag, testid, dataset, parent: root });
    elements.set(testid, element);
    return element;
  };
  testids.forEach((testid) => make(testid, testid.startsWith("toggle-") || testid === "show-again" ? "button" : "div"));
  const buttons = answers.map(([testid, dataset]) => make(testid, "button", dataset));
  Object.entries(parents).forEach(([child, parent]) => { elements.get(child).parent = elements.get(parent); });
  root.querySelector = (selector) => {
    const match = selector.match(/^\[data-testid="([^"]+)"\]$/);
    return (match && elements.get(match[1])) || null;
  };
  root.querySelectorAll = (selector) => (selector === ".answer" ? buttons : []);
  root.contains = (element) => Boolean(element) && (element === root || elements.has(element.dataset.testid));
  root.style = { setProperty() {} };
  const doc = new FakeElement();
  doc.visibilityState = "visible";
  doc.cookie = "";
  doc.fullscreenElement = null;
  const win = new FakeElement();
  Object.assign(win, {
    document: doc,
    devicePixelRatio: 1,
    innerWidth: 1280,
    innerHeight: 800,
    outerWidth: 1280,
    screen: { width: 1920, height: 1080 },
    localStorage: new FakeStorage(),
    fetch,
    location: { assign() {}, reload() {} },
    performance: { now: () => now, mark() {} },
    requestAnimationFrame(fn) { frameId += 1; frames.set(frameId, fn); return frameId; },
    cancelAnimationFrame(id) { frames.delete(id); },
  });
  return {
    win,
    doc,
    root,
    el: (testid) => elements.get(testid),
    get now() { return now; },
    /** Advance the clock by `ms` and run the animation frame callbacks then pending. */
    frame(ms = 0) {
      now += ms;
      const due = [...frames.values()];
      frames.clear();
      due.forEach((fn) => fn(now));
    },
    get pendingFrames() { return frames.size; },
  };
}

/** A viewer as app.js uses it, recording the slots it was asked to draw. */
export function fakeViewer() {
  const viewer = {
    shown: null,
    slots: null,
    draws: 0,
    destroyed: false,
    zoom: 1,
    prepare: async () => undefined,
    isPrepared: () => true,
    show(trial, slots) { viewer.shown = trial; viewer.slots = { ...slots }; viewer.draws += 1; },
    setSlots(slots) { viewer.slots = { ...slots }; viewer.draws += 1; },
    zoomBy() {},
    resetView() {},
    panKey() {},
    fits: () => true,
    destroy() { viewer.destroyed = true; },
  };
  return viewer;
}
