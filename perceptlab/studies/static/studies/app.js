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

function sameTrial(a, b) {
  return Boolean(a && b) && a.position === b.position && a.images.a === b.images.a;
}

class Rater {
  constructor({ win, root, config }) {
    this.win = win;
    this.doc = win.document;
    this.root = root;
    this.config = config;
    this.layout = config.layout; // single | side_by_side | sequential | pair
    this.flippable = this.layout === "pair" || this.layout === "sequential";
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
      commands: keyCommands(config),
      handlers: this.keyHandlers(),
    });
    // The viewer reports whether the panes fit while it is being created: no `this.viewer` yet.
    this.viewer = createViewer({ root, config, onFitChange: (fits) => this.onFitChange(fits) });
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
    const flip = this.el("flip");
    if (flip) flip.disabled = this.status !== "ready";
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
    if (flips > 0) parts.push("Flip " + flips + " more time" + (flips === 1 ? "" : "s"));
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
    const showing = this.trial ? this.trial.showing : "a";
    if (this.layout === "pair") return { reference: "reference", test: showing };
    if (this.layout === "sequential") {
      return { reference: "reference", test: showing === "reference" ? "reference" : "a" };
    }
    return { reference: "reference", test: "a" };
  }

  updateLabels() {
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

  prepare(trial) {
    if (trial) this.viewer.prepare(trial).catch(() => undefined); // retried when shown
  }

  /** Put `trial` on screen: at once if decoded, else after decoding, over the old picture. */
  display(trial) {
    const serial = ++this.serial;
    this.current = trial;
    this.trial = null; // no clock runs while nothing of this trial is visible
    clearTimeout(this.tickTimer);
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
    if (!button || !this.root.contains(button)) return;
    button.blur(); // so Space and Enter do not press it again
    const data = button.dataset;
    if (data.choice) this.answer({ choice: data.choice });
    else if (data.score) this.answer({ score: Number(data.score) });
    else if (data.action === "zoom-in") this.zoomBy(1);
    else if (data.action === "zoom-out") this.zoomBy(-1);
    else if (data.action === "zoom-reset") this.resetView();
    else if (data.action === "flip") this.flip();
    else if (data.action === "submit") this.submitSlider();
    else if (data.action === "continue") this.continueAfterFeedback();
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

/** Start the rating page's app on `root` (the #rater element). */
export function startRater({ win, root, config }) {
  const rater = new Rater({ win, root, config });
  rater.start();
  return rater;
}

if (typeof document !== "undefined") {
  const configNode = document.getElementById("rater-config");
  const root = document.getElementById("rater");
  if (configNode && root) startRater({ win: window, root, config: JSON.parse(configNode.textContent) });
}
