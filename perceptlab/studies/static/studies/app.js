/*
 * PerceptLab rating page: ES modules, no build step, no dependencies.
 *
 * viewer.js draws each trial's images at one image pixel per device pixel; queue.js posts
 * every answer with an idempotency key and keeps it until the server acknowledges it;
 * keys.js maps keys to commands. This module wires them to the page and enforces the
 * answer rules:
 *
 * 1. Answers open only after the images were visible for config.minViewSeconds and, where
 *    config.minFlips > 0, after that many flips; a countdown says how long.
 * 2. A key must be released between answers (keys.js).
 * 3. view_ms is the browser's visible time: from the draw to the answer, paused while the
 *    document is hidden and while the trial is paused.
 * 4. Replayed answers keep their original times (queue.js sends age_ms).
 * 5. Each answer reports its viewing conditions (`viewing`).
 * 6. A window that cuts a pane off pauses the trial until every pane fits again.
 * 7. Back/Forward never show an answered trial: a page restored from the back-forward
 *    cache reloads (the server sends Cache-Control: no-store as well).
 * 8. The `online` event retries at once.
 * 9. No blank frame between trials: the next trial is decoded ahead and drawn in the same
 *    frame as the answer; if it is not ready, the old picture stays under "Loading…".
 *
 * Triplets (JPEG AIC-3 triplet comparison, layout "triplet"): the pivot (the original) in
 * the middle pane, test image "a" left and "b" right; the rater says which side differs
 * more from the pivot. PTC (plain): F, J, Space, the toggle buttons or a click on a side
 * pane toggle that side between its test image and the pivot; each side's toggle counts
 * one flip. BTC (boosted): each side flickers against the pivot (btcFrame), then all panes
 * go blank; Space or "Show again" replays it, and each replay counts one flip. The flicker
 * runs on requestAnimationFrame against the trial's visible time (performance.now), so its
 * period does not drift and it pauses with the trial (hidden tab, panes cut off).
 *
 * After every response the app follows the server's state (the server decides which trial
 * is current), but only once no answer is waiting to be sent.
 */
import { zoomEstimate } from "./instructions.js";
import { createKeyboard, keyCommands } from "./keys.js";
import { createBackoff, createQueue } from "./queue.js";
import { createViewer } from "./viewer.js";

const MESSAGE_MS = 5000;
const TICK_MS = 100;
const RESIZE_BURST_MS = 300; // resize events closer than this are one resize
const QUIET_CODES = new Set(["out_of_order", "not_rating", "expired", "unknown_trial"]);
const EXPIRED = "This page has expired. Please reload it to continue; your answers are kept.";
const INVALID = "This study link is no longer valid.";

/**
 * A trial's clock: visible time (shown, document visible, not paused), hidden time and
 * paused time, in ms of `now()` (performance.now).
 */
export function createTrialClock(now, { hidden = false } = {}) {
  const state = { hidden, paused: false, last: now(), visible: 0, hiddenMs: 0, pausedMs: 0 };
  function account() {
    const t = now();
    const elapsed = Math.max(0, t - state.last);
    state.last = t;
    if (state.hidden) state.hiddenMs += elapsed;
    if (state.paused) state.pausedMs += elapsed;
    if (!state.hidden && !state.paused) state.visible += elapsed;
  }
  return {
    setHidden(on) { account(); state.hidden = on; },
    setPaused(on) { account(); state.paused = on; },
    get running() { return !state.hidden && !state.paused; },
    read() {
      account();
      return { visibleMs: state.visible, hiddenMs: state.hiddenMs, pausedMs: state.pausedMs };
    },
  };
}

/** The window's viewing conditions now, as the server's viewing.TRIAL_FIELDS names them. */
export function viewingNow(win) {
  const screen = win.screen || {};
  return {
    dpr: win.devicePixelRatio || 1,
    window_width: win.innerWidth,
    window_height: win.innerHeight,
    screen_width: screen.width || 0,
    screen_height: screen.height || 0,
    zoom: zoomEstimate(win),
  };
}

function readCookie(doc, name) {
  const match = doc.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
  return match ? decodeURIComponent(match[1]) : null;
}

const TRIPLET_DEFAULTS = { mode: "ptc", flickerMs: 100, showMs: 8000, blankMs: 3000 };
const CLICK_SLOP_PX = 4; // a pointer that moved further between down and up dragged (panned)
const TEST_IMAGE = { left: "a", right: "b" }; // each triplet side's test image

/**
 * A boosted (BTC) triplet's presentation `elapsedMs` after it was (re)started: "flicker"
 * for showMs, each side alternating every flickerMs between its test image (phase 0) and
 * the pivot (phase 1); then "blank" for blankMs; then "idle" (blank, until shown again).
 * Pure: the phase follows from the elapsed time alone, so frames never accumulate drift.
 */
export function btcFrame(elapsedMs, { flickerMs, showMs, blankMs }) {
  const t = Math.max(0, elapsedMs);
  if (t < showMs) return { stage: "flicker", phase: Math.floor(t / flickerMs) % 2 };
  if (t < showMs + blankMs) return { stage: "blank", phase: 0 };
  return { stage: "idle", phase: 0 };
}

/** The image each triplet pane shows in a BTC frame; null: a blank pane. */
export function btcSlots({ stage, phase }) {
  if (stage !== "flicker") return { left: null, reference: null, right: null };
  if (phase === 1) return { left: "reference", reference: "reference", right: "reference" };
  return { left: "a", reference: "reference", right: "b" };
}

/** The image each triplet pane shows in PTC; sides: {left: "a" | "reference", right: "b" | "reference"}. */
export function ptcSlots(sides) {
  return { left: sides.left, reference: "reference", right: sides.right };
}

/** config.triplet with its defaults; null for a study that is not a triplet. */
export function tripletOptions(config) {
  if (config.layout !== "triplet") return null;
  const given = config.triplet || {};
  const options = { ...TRIPLET_DEFAULTS };
  if (given.mode === "btc") options.mode = "btc";
  ["flickerMs", "showMs", "blankMs"].forEach((name) => {
    if (Number(given[name]) > 0) options[name] = Number(given[name]);
  });
  return options;
}

function sameTrial(a, b) {
  return Boolean(a && b) && a.position === b.position && a.images.a === b.images.a;
}

class Rater {
  constructor({ win, root, config, makeViewer = createViewer }) {
    this.win = win;
    this.doc = win.document;
    this.root = root;
    this.config = config;
    this.layout = config.layout; // single | side_by_side | sequential | pair | triplet
    this.flippable = this.layout === "pair" || this.layout === "sequential";
    this.triplet = tripletOptions(config); // {mode, flickerMs, showMs, blankMs} or null
    this.btc = Boolean(this.triplet) && this.triplet.mode === "btc";
    this.ptc = Boolean(this.triplet) && !this.btc;
    this.minViewMs = Math.max(0, Number(config.minViewSeconds) || 0) * 1000;
    this.minFlips = Number(config.minFlips) || 0;
    this.slider = this.el("slider");
    this.status = "loading"; // loading | ready | paused | saving | feedback | finished | error
    this.current = null; // the trial drawn (or being decoded to be drawn)
    this.upcoming = null; // the next trial, drawn right after an answer
    this.latest = null; // the newest state payload, applied once the queue is empty
    this.feedback = ""; // practice feedback waiting for "Continue"
    this.progress = config.initial.progress;
    this.trial = null; // per-trial state of the drawn trial: clock, flips, viewing counts
    this.fitting = true;
    this.serial = 0;
    this.sending = null;
    this.tickTimer = 0;
    this.messageTimer = 0;
    this.frameRequest = 0; // the BTC flicker's pending requestAnimationFrame
    this.pointerStart = null; // where the last pointerdown was: a click after a drag pans
    this.destroyed = false;
    this.lastResize = -Infinity;
    this.stateBackoff = createBackoff();
    this.imageBackoff = createBackoff();
    this.queue = createQueue({
      code: config.code,
      url: config.urls.judge,
      fetch: (...args) => win.fetch(...args),
      storage: this.storage(),
      csrfToken: () => readCookie(this.doc, "csrftoken") || config.csrfToken,
      monoClock: () => win.performance.now(),
      onResponse: (data, status) => this.receive(data, status),
      onConnection: (ok) => this.setNotice(!ok),
    });
    this.keyboard = createKeyboard({
      commands: keyCommands({ ...config, triplet: this.triplet }),
      handlers: this.keyHandlers(),
    });
    // The viewer reports whether the panes fit while it is being created: no `this.viewer` yet.
    this.viewer = makeViewer({ root, config, onFitChange: (fits) => this.onFitChange(fits) });
  }

  el(testid) {
    return this.root.querySelector('[data-testid="' + testid + '"]');
  }

  storage() {
    try {
      return this.win.localStorage;
    } catch (error) {
      return null; // storage blocked: the queue lives in memory only
    }
  }

  now() {
    return this.win.performance.now();
  }

  // -- start --------------------------------------------------------------------------

  start() {
    this.listen();
    this.updateProgress();
    if (this.queue.length) {
      this.setStatus("saving"); // answers an earlier page left unsent go first
      this.send();
    } else {
      this.sync(this.config.initial);
    }
  }

  listen() {
    const { win, doc, root } = this;
    doc.addEventListener("keydown", (event) => this.keyboard.keydown(event));
    doc.addEventListener("keyup", (event) => {
      this.keyboard.keyup(event);
      if (event.key === " " && event.target.closest && event.target.closest("button")) {
        event.preventDefault(); // Space flips; it must not also press a focused button
      }
    });
    root.addEventListener("pointerdown", (event) => {
      this.pointerStart = { x: event.clientX, y: event.clientY };
    });
    root.addEventListener("click", (event) => this.onClick(event));
    if (this.slider) this.slider.addEventListener("input", () => this.onSlide());
    win.addEventListener("blur", () => {
      this.keyboard.blur();
      if (this.trial) this.trial.focus_losses += 1;
    });
    doc.addEventListener("visibilitychange", () => {
      if (this.trial) this.trial.clock.setHidden(doc.visibilityState === "hidden");
      this.refreshGate();
    });
    doc.addEventListener("fullscreenchange", () => {
      if (this.trial && !doc.fullscreenElement) this.trial.fullscreen_exits += 1;
    });
    win.addEventListener("resize", () => this.onResize());
    win.addEventListener("online", () => {
      this.queue.wake();
      this.stateBackoff.wake();
      this.imageBackoff.wake();
    });
    win.addEventListener("pageshow", (event) => {
      // Restored from the back-forward cache: the trial on screen may be answered already.
      if (event.persisted) win.location.reload();
    });
    win.addEventListener("pagehide", () => this.stopFlicker());
  }

  keyHandlers() {
    return {
      status: () => this.status,
      answer: (fields) => this.answer(fields),
      submit: () => this.submitSlider(),
      continueFeedback: () => this.continueAfterFeedback(),
      zoomBy: (step) => this.zoomBy(step),
      resetView: () => this.resetView(),
      flip: () => this.flip(),
      toggle: (side) => this.toggle(side),
      replay: () => this.replay(),
      zoomed: () => this.viewer.zoom > 1,
      panKey: (key) => this.viewer.panKey(key),
      slide: this.slider ? (delta) => this.slide(delta) : null,
      isSlider: (target) => Boolean(this.slider) && target === this.slider,
    };
  }

  // -- status, progress, messages ------------------------------------------------------

  setStatus(next) {
    this.status = next;
    this.root.dataset.status = next;
    this.el("saving").hidden = next !== "saving";
    this.el("loading").hidden = next !== "loading";
    this.el("feedback").hidden = next !== "feedback";
    this.el("paused-message").hidden = next !== "paused";
    this.refreshGate();
  }

  updateProgress() {
    const total = this.progress.total;
    const answered = Math.min(total, this.progress.answered + this.queue.length);
    const bar = this.el("progress");
    bar.max = Math.max(total, 1);
    bar.value = answered;
    bar.dataset.answered = String(answered);
    bar.dataset.total = String(total);
    this.el("progress-text").textContent = answered + " / " + total;
  }

  setNotice(on) {
    const notice = this.el("notice");
    notice.textContent = "Reconnecting…";
    notice.hidden = !on;
  }

  flashMessage(text) {
    const message = this.el("message");
    message.textContent = text;
    message.hidden = false;
    clearTimeout(this.messageTimer);
    this.messageTimer = setTimeout(() => { message.hidden = true; }, MESSAGE_MS);
  }

  fail(text) {
    clearTimeout(this.messageTimer);
    this.el("message").textContent = text;
    this.el("message").hidden = false;
    this.setNotice(false);
    this.setStatus("error");
  }

  // -- the answer gate: minimum view time and flips --------------------------------------

  /** {ms, flips}: what is still missing before answers open (zeros when open). */
  missing() {
    if (!this.trial) return { ms: 0, flips: 0 };
    const { visibleMs } = this.trial.clock.read();
    return {
      ms: Math.max(0, this.minViewMs - visibleMs),
      flips: Math.max(0, this.minFlips - this.trial.flips),
    };
  }

  answersOpen() {
    const { ms, flips } = this.missing();
    return this.status === "ready" && ms === 0 && flips === 0;
  }

  refreshGate() {
    const open = this.answersOpen();
    this.root.dataset.answers = open ? "open" : "closed";
    this.root.querySelectorAll(".answer").forEach((button) => {
      const needsSlider = button.dataset.action === "submit" && !(this.trial && this.trial.touched);
      button.disabled = !open || needsSlider;
    });
    const ready = this.status === "ready";
    ["flip", "toggle-left", "toggle-right"].forEach((testid) => {
      const button = this.el(testid);
      if (button) button.disabled = !ready;
    });
    const again = this.el("show-again");
    if (again) again.disabled = !(ready && this.trial && this.trial.btc.stage === "idle");
    this.showCountdown();
    this.scheduleTick();
  }

  showCountdown() {
    const countdown = this.el("countdown");
    const { ms, flips } = this.missing();
    const waiting = (this.status === "ready" || this.status === "paused") && (ms > 0 || flips > 0);
    countdown.hidden = !waiting;
    if (!waiting) return;
    const parts = [];
    if (flips > 0) {
      const verb = this.ptc ? "Toggle " : this.btc ? "Show again " : "Flip ";
      parts.push(verb + flips + " more time" + (flips === 1 ? "" : "s"));
    }
    if (ms > 0) parts.push("You can answer in " + (Math.ceil(ms / 100) / 10).toFixed(1) + " s");
    countdown.textContent = parts.join(" · ");
  }

  scheduleTick() {
    clearTimeout(this.tickTimer);
    const { ms } = this.missing();
    if (this.status !== "ready" || ms === 0 || !this.trial.clock.running) return;
    this.tickTimer = setTimeout(() => this.refreshGate(), Math.min(TICK_MS, Math.ceil(ms)));
  }

  // -- trials ---------------------------------------------------------------------------

  slots() {
    if (this.btc) return btcSlots(this.trial ? this.trial.btc : { stage: "flicker", phase: 0 });
    if (this.ptc) return ptcSlots(this.trial ? this.trial.sides : TEST_IMAGE);
    const showing = this.trial ? this.trial.showing : "a";
    if (this.layout === "pair") return { reference: "reference", test: showing };
    if (this.layout === "sequential") {
      return { reference: "reference", test: showing === "reference" ? "reference" : "a" };
    }
    return { reference: "reference", test: "a" };
  }

  updateLabels() {
    if (this.triplet) {
      this.updateTripletLabels();
      return;
    }
    const showing = this.trial.showing;
    const label = this.el("label-test");
    if (this.layout === "pair") label.textContent = showing.toUpperCase();
    if (this.layout === "sequential") label.textContent = showing === "reference" ? "Reference" : "Test";
    this.el("pane-test").dataset.showing = showing;
    if (this.flippable) {
      const flips = this.trial.flips;
      this.el("flip-count").textContent = flips + (flips === 1 ? " flip" : " flips");
    }
  }

  /** Triplet panes: data-showing ("a" | "b" | "reference" | "blank"), PTC captions, BTC stage. */
  updateTripletLabels() {
    const trial = this.trial;
    const slots = this.slots();
    ["left", "reference", "right"].forEach((name) => {
      const pane = this.el(name === "reference" ? "pane-reference" : "pane-" + name);
      if (pane) pane.dataset.showing = slots[name] || "blank";
    });
    if (this.ptc) {
      ["left", "right"].forEach((side) => {
        const label = this.el("label-" + side);
        const original = trial.sides[side] === "reference";
        if (label) label.textContent = (side === "left" ? "Left: " : "Right: ") + (original ? "original" : "test");
      });
      const count = this.el("flip-count");
      if (count) count.textContent = trial.flips + (trial.flips === 1 ? " toggle" : " toggles");
      return;
    }
    this.root.dataset.btcStage = trial.btc.stage;
    const status = this.el("btc-status");
    if (status) status.textContent = this.btcStatusText();
  }

  btcStatusText() {
    const btc = this.trial.btc;
    if (btc.stage === "flicker") return "Showing… " + btc.seconds + " s";
    if (btc.stage === "blank") return "Blank";
    return "Press Space to show again";
  }

  prepare(trial) {
    if (trial) this.viewer.prepare(trial).catch(() => undefined); // retried when shown
  }

  /** Put `trial` on screen: at once if decoded, else after decoding, over the old picture. */
  display(trial) {
    const serial = ++this.serial;
    this.current = trial;
    this.trial = null; // no clock runs while nothing of this trial is visible
    clearTimeout(this.tickTimer);
    this.stopFlicker();
    if (this.viewer.isPrepared(trial)) {
      this.draw(trial);
      return;
    }
    this.setStatus("loading");
    this.decode(trial, serial).then((ok) => {
      if (ok && serial === this.serial) this.draw(trial);
    });
  }

  async decode(trial, serial) {
    for (;;) {
      try {
        await this.viewer.prepare(trial);
        this.imageBackoff.reset();
        this.setNotice(false);
        return true;
      } catch (error) {
        if (serial !== this.serial) return false;
        this.setNotice(true);
        await this.imageBackoff.wait();
        if (serial !== this.serial) return false;
      }
    }
  }

  draw(trial) {
    const hidden = this.doc.visibilityState === "hidden";
    this.trial = {
      clock: createTrialClock(() => this.now(), { hidden }),
      flips: 0,
      touched: false,
      showing: this.layout === "sequential" ? "reference" : "a",
      sides: { ...TEST_IMAGE }, // PTC: what each side shows
      // BTC: the presentation started at visible time `since`; the stage, phase and
      // seconds left drawn last (the loop redraws only when one of them changes).
      btc: { since: 0, stage: "flicker", phase: 0, seconds: this.btc ? Math.ceil(this.triplet.showMs / 1000) : 0 },
      focus_losses: 0,
      fullscreen_exits: 0,
      resizes: 0,
      cut: false,
    };
    if (this.slider) {
      this.slider.value = "50";
      this.el("slider-value").textContent = "50";
    }
    this.el("practice-label").hidden = !trial.practice;
    this.el("trial-position").textContent = String(trial.position);
    this.root.dataset.position = String(trial.position);
    this.updateLabels();
    this.viewer.show(trial, this.slots()); // synchronous: drawn in this frame
    this.el("zoom-level").textContent = this.viewer.zoom + "×";
    this.fitting = this.viewer.fits();
    this.trial.cut = !this.fitting;
    this.trial.clock.setPaused(!this.fitting);
    this.setStatus(this.fitting ? "ready" : "paused");
    if (this.btc) this.startFlicker();
    this.prepare(this.upcoming);
  }

  onFitChange(fits) {
    this.fitting = fits;
    if (!this.trial) return; // before the first draw, or between trials
    if (!fits) this.trial.cut = true;
    if (this.status === "ready" && !fits) {
      this.trial.clock.setPaused(true);
      this.setStatus("paused");
    } else if (this.status === "paused" && fits) {
      this.trial.clock.setPaused(false);
      this.setStatus("ready");
    }
  }

  onResize() {
    const t = this.now();
    if (this.trial && t - this.lastResize > RESIZE_BURST_MS) this.trial.resizes += 1;
    this.lastResize = t;
  }

  sync(payload) {
    if (this.queue.length) return; // answers still on their way: their responses decide
    this.progress = payload.progress;
    this.updateProgress();
    if (!payload.trial) {
      this.setStatus("finished");
      this.win.location.assign(payload.redirect || this.config.urls.session);
      return;
    }
    this.upcoming = payload.next;
    const onScreen = this.status !== "saving" && this.status !== "feedback";
    if (onScreen && sameTrial(this.current, payload.trial)) {
      this.prepare(this.upcoming);
      return;
    }
    this.display(payload.trial);
  }

  flip() {
    if (this.status !== "ready" || !this.flippable) return;
    const trial = this.trial;
    if (this.layout === "pair") trial.showing = trial.showing === "a" ? "b" : "a";
    else trial.showing = trial.showing === "reference" ? "test" : "reference";
    trial.flips += 1;
    this.viewer.setSlots(this.slots());
    this.updateLabels();
    this.refreshGate();
  }

  /** PTC: toggle one side ("left" | "right") or "both" between its test image and the pivot. */
  toggle(side) {
    if (this.status !== "ready" || !this.ptc) return;
    const trial = this.trial;
    const sides = side === "both" ? ["left", "right"] : [side];
    sides.forEach((name) => {
      if (!(name in TEST_IMAGE)) return;
      trial.sides[name] = trial.sides[name] === "reference" ? TEST_IMAGE[name] : "reference";
      trial.flips += 1; // per side: Space, which toggles both, counts two
    });
    this.viewer.setSlots(this.slots());
    this.updateLabels();
    this.refreshGate();
  }

  /** BTC: once the blank is over, show the flickering triplet again; each replay is a flip. */
  replay() {
    if (this.status !== "ready" || !this.btc || this.trial.btc.stage !== "idle") return;
    const trial = this.trial;
    trial.flips += 1;
    trial.btc.since = trial.clock.read().visibleMs;
    this.renderFlicker();
    this.refreshGate();
    this.startFlicker();
  }

  // -- the BTC flicker ------------------------------------------------------------------

  /** Draw the BTC frame due now; true while the presentation is still changing. */
  renderFlicker() {
    const trial = this.trial;
    const btc = trial.btc;
    const elapsed = trial.clock.read().visibleMs - btc.since;
    const frame = btcFrame(elapsed, this.triplet);
    const seconds = frame.stage === "flicker" ? Math.ceil((this.triplet.showMs - elapsed) / 1000) : 0;
    const redraw = frame.stage !== btc.stage || frame.phase !== btc.phase;
    const restage = frame.stage !== btc.stage;
    if (!redraw && seconds === btc.seconds) return frame.stage !== "idle";
    btc.stage = frame.stage;
    btc.phase = frame.phase;
    btc.seconds = seconds;
    if (redraw) this.viewer.setSlots(this.slots());
    this.updateLabels();
    if (restage) this.refreshGate(); // "Show again" opens when idle
    return frame.stage !== "idle";
  }

  /** Run the flicker for the trial on screen, one check per animation frame. */
  startFlicker() {
    this.stopFlicker();
    const trial = this.trial;
    const step = () => {
      this.frameRequest = 0;
      // A new trial, an answer (no trial) or the page's end stops this loop.
      if (this.destroyed || !trial || this.trial !== trial) return;
      if (this.renderFlicker()) this.frameRequest = this.win.requestAnimationFrame(step);
    };
    this.frameRequest = this.win.requestAnimationFrame(step);
  }

  stopFlicker() {
    if (this.frameRequest) this.win.cancelAnimationFrame(this.frameRequest);
    this.frameRequest = 0;
  }

  zoomBy(step) {
    this.viewer.zoomBy(step);
    this.el("zoom-level").textContent = this.viewer.zoom + "×";
  }

  resetView() {
    this.viewer.resetView();
    this.el("zoom-level").textContent = this.viewer.zoom + "×";
  }

  // -- answers --------------------------------------------------------------------------

  /** Take one answer if answers are open; true when it was taken. */
  answer(fields) {
    if (!this.answersOpen() || !this.current) return false;
    this.win.performance.mark("perceptlab:answer");
    const shown = this.current;
    const trial = this.trial;
    this.stopFlicker();
    const { visibleMs, hiddenMs, pausedMs } = trial.clock.read();
    const viewing = {
      ...viewingNow(this.win),
      hidden_ms: Math.round(hiddenMs),
      paused_ms: Math.round(pausedMs),
      focus_losses: trial.focus_losses,
      fullscreen_exits: trial.fullscreen_exits,
      resizes: trial.resizes,
      cut: trial.cut,
    };
    this.queue.push({
      position: shown.position,
      flips: trial.flips,
      view_ms: Math.round(visibleMs),
      viewing,
      ...fields,
    });
    const next = this.upcoming;
    if (!shown.practice && next && !sameTrial(next, shown)) {
      this.upcoming = null;
      this.display(next); // optimistic: the server will confirm (or correct) it
    } else {
      this.current = null; // practice waits for its feedback; otherwise nothing known yet
      this.trial = null;
      this.setStatus("saving");
    }
    this.updateProgress();
    this.send();
    return true;
  }

  submitSlider() {
    if (!this.slider || this.status !== "ready") return false;
    if (!this.trial.touched) {
      this.flashMessage("Move the slider to your rating first.");
      return false;
    }
    return this.answer({ score: Number(this.slider.value) });
  }

  slide(delta) {
    this.slider.value = String(Number(this.slider.value) + delta);
    this.onSlide();
  }

  onSlide() {
    if (this.trial) this.trial.touched = true;
    this.el("slider-value").textContent = this.slider.value;
    this.refreshGate();
  }

  onClick(event) {
    const button = event.target.closest("button");
    if (!button || !this.root.contains(button)) {
      this.onPaneClick(event);
      return;
    }
    button.blur(); // so Space and Enter do not press it again
    const data = button.dataset;
    if (data.choice) this.answer({ choice: data.choice });
    else if (data.score) this.answer({ score: Number(data.score) });
    else if (data.action === "zoom-in") this.zoomBy(1);
    else if (data.action === "zoom-out") this.zoomBy(-1);
    else if (data.action === "zoom-reset") this.resetView();
    else if (data.action === "flip") this.flip();
    else if (data.action === "toggle-left") this.toggle("left");
    else if (data.action === "toggle-right") this.toggle("right");
    else if (data.action === "show-again") this.replay();
    else if (data.action === "submit") this.submitSlider();
    else if (data.action === "continue") this.continueAfterFeedback();
  }

  /** PTC: a click on a side pane toggles it, unless the pointer dragged (a zoomed pan). */
  onPaneClick(event) {
    const pane = event.target.closest("[data-toggle]");
    if (!pane || !this.root.contains(pane)) return;
    const start = this.pointerStart;
    this.pointerStart = null;
    if (start && Math.hypot(event.clientX - start.x, event.clientY - start.y) > CLICK_SLOP_PX) return;
    this.toggle(pane.dataset.toggle);
  }

  /** Stop the flicker and the timers and free the viewer's images (the page is going away). */
  destroy() {
    this.destroyed = true;
    this.stopFlicker();
    clearTimeout(this.tickTimer);
    clearTimeout(this.messageTimer);
    this.viewer.destroy();
  }

  // -- the server: answers out, state in -------------------------------------------------

  send() {
    if (this.sending) return;
    this.sending = this.queue.flush().then((outcome) => {
      this.sending = null;
      if (outcome === "empty") this.settle();
    });
  }

  receive(data, status) {
    if (status === 403) {
      this.fail(EXPIRED);
      return;
    }
    if (status === 404) {
      this.fail(INVALID);
      return;
    }
    if (!data) return;
    if (data.progress) this.progress = data.progress;
    if ("state" in data) this.latest = data;
    if (data.feedback) this.feedback = data.feedback;
    if (data.ok === false && data.message && !QUIET_CODES.has(data.code)) {
      this.flashMessage(data.message);
    }
    this.prepare(data.trial);
    this.prepare(data.next);
    this.updateProgress();
  }

  settle() {
    if (this.status === "error") return;
    if (this.feedback) {
      this.el("feedback-text").textContent = this.feedback;
      this.setStatus("feedback");
      return;
    }
    const payload = this.latest;
    this.latest = null;
    if (payload) this.sync(payload);
    else this.refresh();
  }

  continueAfterFeedback() {
    if (this.status !== "feedback") return;
    this.feedback = "";
    this.settle();
  }

  async refresh() {
    for (;;) {
      try {
        const response = await this.win.fetch(this.config.urls.state, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
          cache: "no-store",
        });
        if (response.status === 404) {
          this.fail(INVALID);
          return;
        }
        if (response.ok) {
          this.stateBackoff.reset();
          this.setNotice(false);
          this.sync(await response.json());
          return;
        }
      } catch (error) {
        // offline: try again below
      }
      this.setNotice(true);
      await this.stateBackoff.wait();
    }
  }
}

/**
 * Start the rating page's app on `root` (the #rater element). makeViewer: the viewer's
 * factory (node tests pass a fake; the page uses viewer.js's createViewer).
 */
export function startRater({ win, root, config, makeViewer = createViewer }) {
  const rater = new Rater({ win, root, config, makeViewer });
  rater.start();
  return rater;
}

if (typeof document !== "undefined") {
  const configNode = document.getElementById("rater-config");
  const root = document.getElementById("rater");
  if (configNode && root) startRater({ win: window, root, config: JSON.parse(configNode.textContent) });
}
