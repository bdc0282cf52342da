"use strict";
/*
 * PerceptLab rater app: plain JavaScript, no build step, no dependencies.
 *
 * Instructions page: fills the screen-check form with the window size and devicePixelRatio.
 * Rating page: shows each trial's images at one image pixel per device pixel, zooms and pans
 * all panes together, takes answers from buttons and keys, and posts every answer at once
 * with an idempotency key. Answers wait in localStorage until the server acknowledges them,
 * so a lost connection or a reload loses nothing; after every response the app follows the
 * server's state (the server decides which trial is current).
 */
(function () {
  const ZOOMS = [1, 2, 4];
  const RETRY_MS = [1000, 2000, 4000, 8000, 15000, 30000];
  const MESSAGE_MS = 5000;
  const CACHE_SIZE = 24;
  const QUIET_CODES = new Set(["out_of_order", "not_rating", "expired", "unknown_trial"]);

  function fillScreenForm(form) {
    const fill = function () {
      form.elements.inner_width.value = String(window.innerWidth);
      form.elements.inner_height.value = String(window.innerHeight);
      form.elements.device_pixel_ratio.value = String(window.devicePixelRatio || 1);
    };
    fill();
    window.addEventListener("resize", fill);
    form.addEventListener("submit", fill);
  }

  function uuid4() {
    // crypto.randomUUID exists only in secure contexts; getRandomValues works everywhere.
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)]
      .join("-");
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function readCookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : null;
  }

  /* Answers not yet acknowledged by the server, oldest first, mirrored in localStorage. */
  function pendingQueue(code) {
    const key = "perceptlab.pending." + code;
    let items = [];
    try {
      items = JSON.parse(window.localStorage.getItem(key) || "[]");
    } catch (error) {
      items = [];
    }
    if (!Array.isArray(items)) items = [];
    function save() {
      try {
        if (items.length) window.localStorage.setItem(key, JSON.stringify(items));
        else window.localStorage.removeItem(key);
      } catch (error) {
        // Storage disabled or full: the queue still lives in memory for this page.
      }
    }
    return {
      get length() { return items.length; },
      first() { return items[0]; },
      push(entry) { items.push(entry); save(); },
      shift() { items.shift(); save(); },
      clear() { items = []; save(); },
    };
  }

  function startRater(config, root) {
    const el = (testid) => root.querySelector('[data-testid="' + testid + '"]');
    const layout = config.layout; // single | side_by_side | sequential | pair
    const flips2 = layout === "pair" || layout === "sequential";
    const queue = pendingQueue(config.code);
    const cache = new Map();
    const viewports = Array.from(root.querySelectorAll(".viewport"));
    const inners = Array.from(root.querySelectorAll(".inner"));
    const images = Array.from(root.querySelectorAll(".inner img"));
    const testPane = el("pane-test");
    const slider = el("slider");
    const view = { zoom: 0, x: 0, y: 0 }; // zoom: index into ZOOMS; x, y: CSS px
    let status = "loading"; // loading | ready | saving | feedback | finished | error
    let current = null; // the trial on screen
    let upcoming = null; // the next trial, shown from cache right after an answer
    let latest = null; // the newest state payload, applied once the queue is empty
    let feedback = ""; // practice feedback waiting for "Continue"
    let progress = config.initial.progress;
    let shownAt = 0;
    let flips = 0;
    let showing = "";
    let touched = false;
    let showSerial = 0;
    let sending = false;
    let failures = 0;
    let messageTimer = 0;

    // -- status, progress and messages -------------------------------------------------

    function setStatus(next) {
      status = next;
      root.dataset.status = next;
      root.classList.toggle("hiding", next !== "ready" && next !== "feedback");
      el("saving").hidden = next !== "saving";
      el("feedback").hidden = next !== "feedback";
      refreshButtons();
    }

    function refreshButtons() {
      root.querySelectorAll(".answer").forEach((button) => {
        const needsSlider = button.dataset.action === "submit" && !touched;
        button.disabled = status !== "ready" || needsSlider;
      });
    }

    function updateProgress() {
      const total = progress.total;
      const answered = Math.min(total, progress.answered + queue.length);
      const bar = el("progress");
      bar.max = Math.max(total, 1);
      bar.value = answered;
      bar.dataset.answered = String(answered);
      bar.dataset.total = String(total);
      el("progress-text").textContent = answered + " / " + total;
    }

    function setNotice(on) {
      const notice = el("notice");
      notice.textContent = "Reconnecting…";
      notice.hidden = !on;
    }

    function flashMessage(text) {
      const message = el("message");
      message.textContent = text;
      message.hidden = false;
      clearTimeout(messageTimer);
      messageTimer = setTimeout(() => { message.hidden = true; }, MESSAGE_MS);
    }

    function fail(text) {
      clearTimeout(messageTimer);
      el("message").textContent = text;
      el("message").hidden = false;
      setNotice(false);
      setStatus("error");
    }

    // -- geometry: 1:1 device pixels, shared zoom and pan --------------------------------

    function ratio() {
      return window.devicePixelRatio || 1;
    }

    function layoutSizes() {
      const r = ratio();
      root.style.setProperty("--pane-width", config.crop.width / r + "px");
      root.style.setProperty("--pane-height", config.crop.height / r + "px");
      root.style.setProperty("--gap", config.gapDevicePx / r + "px");
      images.forEach(sizeImage);
      applyView();
      snap();
    }

    function sizeImage(img) {
      const r = ratio();
      img.style.width = (img.naturalWidth || config.crop.width) / r + "px";
      img.style.height = (img.naturalHeight || config.crop.height) / r + "px";
    }

    function snap() {
      // Put each pane on the device-pixel grid, so the browser never resamples the image.
      const r = ratio();
      viewports.forEach((vp) => {
        vp.style.transform = "";
        const box = vp.getBoundingClientRect();
        const dx = (Math.round(box.left * r) - box.left * r) / r;
        const dy = (Math.round(box.top * r) - box.top * r) / r;
        vp.style.transform = "translate(" + dx + "px, " + dy + "px)";
      });
    }

    function applyView() {
      const r = ratio();
      const zoom = ZOOMS[view.zoom];
      const first = images.find((img) => !img.hidden) || images[0];
      const contentW = ((first && first.naturalWidth) || config.crop.width) / r * zoom;
      const contentH = ((first && first.naturalHeight) || config.crop.height) / r * zoom;
      view.x = Math.min(0, Math.max(config.crop.width / r - contentW, view.x));
      view.y = Math.min(0, Math.max(config.crop.height / r - contentH, view.y));
      const x = Math.round(view.x * r) / r; // whole device pixels: zoomed pixels stay square
      const y = Math.round(view.y * r) / r;
      const transform = "translate(" + x + "px, " + y + "px) scale(" + zoom + ")";
      inners.forEach((inner) => { inner.style.transform = transform; });
      root.classList.toggle("zoomed", zoom > 1);
      el("zoom-level").textContent = zoom + "×";
    }

    function zoomBy(step) {
      const next = Math.max(0, Math.min(ZOOMS.length - 1, view.zoom + step));
      if (next === view.zoom) return;
      const r = ratio();
      const cx = config.crop.width / r / 2;
      const cy = config.crop.height / r / 2;
      const factor = ZOOMS[next] / ZOOMS[view.zoom];
      view.x = cx - (cx - view.x) * factor; // keep the centre where it is
      view.y = cy - (cy - view.y) * factor;
      view.zoom = next;
      applyView();
    }

    function resetView() {
      view.zoom = 0;
      view.x = 0;
      view.y = 0;
      applyView();
    }

    function panBy(dx, dy) {
      if (ZOOMS[view.zoom] === 1) return;
      view.x += dx;
      view.y += dy;
      applyView();
    }

    function panWithKey(key) {
      const step = config.crop.width / ratio() / 8;
      const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      panBy(moves[key][0], moves[key][1]);
    }

    viewports.forEach((vp) => {
      vp.addEventListener("pointerdown", (event) => {
        if (ZOOMS[view.zoom] === 1) return;
        event.preventDefault();
        vp.setPointerCapture(event.pointerId);
        let lastX = event.clientX;
        let lastY = event.clientY;
        const move = (e) => {
          panBy(e.clientX - lastX, e.clientY - lastY);
          lastX = e.clientX;
          lastY = e.clientY;
        };
        const end = () => {
          vp.removeEventListener("pointermove", move);
          vp.removeEventListener("pointerup", end);
          vp.removeEventListener("pointercancel", end);
        };
        vp.addEventListener("pointermove", move);
        vp.addEventListener("pointerup", end);
        vp.addEventListener("pointercancel", end);
      });
    });

    // -- trials ------------------------------------------------------------------------

    function sameTrial(a, b) {
      return Boolean(a && b) && a.position === b.position && a.images.a === b.images.a;
    }

    function preload(trial) {
      if (!trial) return;
      Object.values(trial.images).forEach((url) => {
        if (!url || cache.has(url)) return;
        const img = new Image();
        img.src = url;
        img.decode().catch(() => undefined);
        cache.set(url, img);
        if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value);
      });
    }

    function visibleSlot() {
      if (layout === "pair") return showing;
      if (layout === "sequential") return showing === "reference" ? "reference" : "a";
      return "a";
    }

    function updateLabels() {
      images.forEach((img) => {
        if (testPane.contains(img)) img.hidden = img.dataset.slot !== visibleSlot();
      });
      if (layout === "pair") el("label-test").textContent = showing.toUpperCase();
      if (layout === "sequential") {
        el("label-test").textContent = showing === "reference" ? "Reference" : "Test";
      }
      testPane.dataset.showing = showing;
      if (flips2) el("flip-count").textContent = flips + (flips === 1 ? " flip" : " flips");
    }

    function show(trial) {
      const serial = ++showSerial;
      current = trial;
      flips = 0;
      touched = false;
      showing = layout === "pair" ? "a" : layout === "sequential" ? "reference" : "a";
      setStatus("loading");
      images.forEach((img) => {
        const url = trial.images[img.dataset.slot];
        if (url) img.src = url;
        else img.removeAttribute("src");
      });
      if (slider) {
        slider.value = "50";
        el("slider-value").textContent = "50";
      }
      el("practice-label").hidden = !trial.practice;
      el("trial-position").textContent = String(trial.position);
      root.dataset.position = String(trial.position);
      updateLabels();
      resetView();
      const decoding = images.filter((img) => img.src).map((img) => img.decode().catch(() => undefined));
      Promise.all(decoding).then(() => {
        if (serial !== showSerial) return; // another trial replaced this one meanwhile
        images.forEach(sizeImage);
        applyView();
        snap();
        shownAt = performance.now();
        setStatus("ready");
        preload(upcoming);
      });
    }

    function sync(payload) {
      if (queue.length) return; // answers still on their way: their responses decide
      progress = payload.progress;
      updateProgress();
      if (!payload.trial) {
        setStatus("finished");
        window.location.assign(payload.redirect || config.urls.session);
        return;
      }
      upcoming = payload.next;
      if (current && sameTrial(current, payload.trial) && status !== "saving") {
        preload(upcoming);
        return;
      }
      show(payload.trial);
    }

    function flip() {
      if (status !== "ready" || !flips2) return;
      if (layout === "pair") showing = showing === "a" ? "b" : "a";
      else showing = showing === "reference" ? "test" : "reference";
      flips += 1;
      updateLabels();
    }

    // -- answers -----------------------------------------------------------------------

    function answer(fields) {
      if (status !== "ready" || !current) return;
      const trial = current;
      const entry = {
        position: trial.position,
        key: uuid4(),
        flips: flips,
        view_ms: Math.max(0, Math.round(performance.now() - shownAt)),
      };
      queue.push(Object.assign(entry, fields));
      const next = upcoming;
      if (!trial.practice && next && !sameTrial(next, trial)) {
        upcoming = null;
        show(next); // optimistic: the server will confirm (or correct) it
      } else {
        current = null; // practice waits for its feedback; otherwise nothing cached yet
        setStatus("saving");
      }
      updateProgress();
      flush();
    }

    function submitSlider() {
      if (!slider || status !== "ready") return;
      if (!touched) {
        flashMessage("Move the slider to your rating first.");
        return;
      }
      answer({ score: Number(slider.value) });
    }

    async function flush() {
      if (sending) return;
      sending = true;
      try {
        while (queue.length) {
          const outcome = await post(queue.first());
          if (outcome === "stop") return;
          if (outcome === "retry") {
            await backoff();
            continue;
          }
          failures = 0;
          setNotice(false);
        }
      } finally {
        sending = false;
      }
      settle();
    }

    async function post(entry) {
      let response;
      try {
        response = await fetch(config.urls.judge, {
          method: "POST",
          credentials: "same-origin",
          headers: {
            "Content-Type": "application/json",
            Accept: "application/json",
            "X-CSRFToken": readCookie("csrftoken") || config.csrfToken,
          },
          body: JSON.stringify(entry),
        });
      } catch (error) {
        return "retry"; // offline or connection lost
      }
      if (response.status >= 500 || response.status === 408 || response.status === 429) {
        return "retry";
      }
      const data = await response.json().catch(() => null);
      if (response.status === 403) {
        fail("This page has expired. Please reload it to continue; your answers are kept.");
        return "stop";
      }
      queue.shift(); // stored, a duplicate, or refused for good (4xx): never resend it
      if (response.status === 404) {
        queue.clear();
        fail("This study link is no longer valid.");
        return "stop";
      }
      receive(data);
      return "done";
    }

    function receive(data) {
      if (!data) return;
      if (data.progress) progress = data.progress;
      if ("state" in data) latest = data;
      if (data.feedback) feedback = data.feedback;
      if (data.ok === false && data.message && !QUIET_CODES.has(data.code)) {
        flashMessage(data.message);
      }
      preload(data.trial);
      preload(data.next);
      updateProgress();
    }

    function settle() {
      if (feedback) {
        el("feedback-text").textContent = feedback;
        setStatus("feedback");
        return;
      }
      const payload = latest;
      latest = null;
      if (payload) sync(payload);
      else refresh();
    }

    function continueAfterFeedback() {
      if (status !== "feedback") return;
      feedback = "";
      settle();
    }

    function backoff() {
      const ms = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
      failures += 1;
      setNotice(true);
      return sleep(ms);
    }

    async function refresh() {
      for (;;) {
        try {
          const response = await fetch(config.urls.state, {
            credentials: "same-origin",
            headers: { Accept: "application/json" },
            cache: "no-store",
          });
          if (response.status === 404) {
            fail("This study link is no longer valid.");
            return;
          }
          if (response.ok) {
            failures = 0;
            setNotice(false);
            sync(await response.json());
            return;
          }
        } catch (error) {
          // offline: try again below
        }
        await backoff();
      }
    }

    // -- keyboard and buttons ----------------------------------------------------------

    const keys = {};
    keys["+"] = keys["="] = () => zoomBy(1);
    keys["-"] = keys["_"] = () => zoomBy(-1);
    keys.r = resetView;
    if (flips2) keys[" "] = flip;
    if (layout === "pair") {
      keys.a = keys["1"] = () => answer({ choice: "a" });
      keys.b = keys["2"] = () => answer({ choice: "b" });
      if (config.allowUndecided) keys.c = keys["0"] = () => answer({ choice: "undecided" });
    } else if (config.continuous) {
      keys.Enter = submitSlider;
    } else {
      config.points.forEach((point) => {
        keys[point.key] = () => answer({ score: point.value });
      });
    }
    if (!keys["0"]) keys["0"] = resetView; // "0" resets the view unless it is an answer
    const REPEATABLE = new Set(["+", "=", "-", "_"]);

    function onKeyDown(event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
      if (status === "feedback") {
        if (key === "Enter" || key === " ") {
          event.preventDefault();
          if (!event.repeat) continueAfterFeedback();
        }
        return;
      }
      if (key.startsWith("Arrow")) {
        if (event.target === slider) return; // the slider's own arrow keys
        if (ZOOMS[view.zoom] > 1) {
          event.preventDefault();
          panWithKey(key);
        } else if (slider && status === "ready") {
          event.preventDefault();
          slider.value = String(Number(slider.value) + (key === "ArrowRight" || key === "ArrowUp" ? 1 : -1));
          onSlide();
        }
        return;
      }
      const action = keys[key];
      if (!action) return;
      event.preventDefault();
      if (event.repeat && !REPEATABLE.has(key)) return; // a held key answers only once
      if (status === "ready") action();
    }

    function onSlide() {
      touched = true;
      el("slider-value").textContent = slider.value;
      refreshButtons();
    }

    function onClick(event) {
      const button = event.target.closest("button");
      if (!button || !root.contains(button)) return;
      button.blur(); // so Space and Enter do not press it again
      const data = button.dataset;
      if (data.choice) answer({ choice: data.choice });
      else if (data.score) answer({ score: Number(data.score) });
      else if (data.action === "zoom-in") zoomBy(1);
      else if (data.action === "zoom-out") zoomBy(-1);
      else if (data.action === "zoom-reset") resetView();
      else if (data.action === "flip") flip();
      else if (data.action === "submit") submitSlider();
      else if (data.action === "continue") continueAfterFeedback();
    }

    document.addEventListener("keydown", onKeyDown);
    document.addEventListener("keyup", (event) => {
      if (event.key === " " && event.target.closest && event.target.closest("button")) {
        event.preventDefault(); // Space flips; it must not also press a focused button
      }
    });
    root.addEventListener("click", onClick);
    if (slider) slider.addEventListener("input", onSlide);
    window.addEventListener("resize", layoutSizes);
    window.addEventListener("scroll", snap, { passive: true });

    // -- start: send what an earlier page left unsent, then follow the server ------------

    layoutSizes();
    updateProgress();
    if (queue.length) {
      setStatus("saving");
      flush();
    } else {
      sync(config.initial);
    }
  }

  const screenForm = document.getElementById("screen-form");
  if (screenForm) fillScreenForm(screenForm);
  const configNode = document.getElementById("rater-config");
  const root = document.getElementById("rater");
  if (configNode && root) startRater(JSON.parse(configNode.textContent), root);
})();
