// The rater page's triplet layout (JPEG AIC-3 triplet comparison): keys, PTC toggling and
// its flip gate, the BTC flicker's frames and its stages (app.js, keys.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { btcFrame, btcSlots, ptcSlots, startRater, tripletOptions } from "../../../perceptlab/studies/static/studies/app.js";
import { createKeyboard, keyCommands } from "../../../perceptlab/studies/static/studies/keys.js";
import { fakeRaterPage, fakeViewer, settle } from "./fakes.mjs";

const TIMING = { flickerMs: 100, showMs: 8000, blankMs: 3000 };
const SHOWN = { left: "a", reference: "reference", right: "b" };
const PIVOTS = { left: "reference", reference: "reference", right: "reference" };
const BLANK = { left: null, reference: null, right: null };

function keyEvent(key, extra = {}) {
  const code = key === " " ? "Space" : /^[0-9]$/.test(key) ? "Digit" + key : "Key" + key.toUpperCase();
  return { key, code, repeat: false, target: { closest: () => null }, preventDefault() {}, ...extra };
}

function trialAt(position) {
  const images = { reference: "/img/r" + position, a: "/img/a" + position, b: "/img/b" + position };
  return { position, practice: false, method: "triplet", images };
}

/** A rating page of a triplet study on fakes; the server answers every POST with the next trial. */
function triplet({ mode, minFlips = 0, allowUndecided = true, next = true }) {
  const posts = [];
  const fetch = async (url, init) => {
    const body = init && init.body ? JSON.parse(init.body) : null;
    if (body) posts.push(body);
    const position = posts.length;
    return {
      status: 200,
      json: async () => ({
        ok: true,
        state: "rating",
        progress: { answered: position, total: 10 },
        trial: trialAt(position),
        next: trialAt(position + 1),
      }),
    };
  };
  const testids = [
    "practice-label", "trial-position", "progress", "progress-text", "notice", "saving", "loading",
    "feedback", "feedback-text", "paused-message", "countdown", "message", "zoom-level",
    "pane-left", "pane-reference", "pane-right", "label-left", "label-reference", "label-right",
    "canvas-left", "canvas-right",
    ...(mode === "btc" ? ["show-again", "btc-status"] : ["toggle-left", "toggle-right", "flip-count"]),
  ];
  const answers = [
    ["choose-left", { choice: "a" }],
    ...(allowUndecided ? [["undecided", { choice: "undecided" }]] : []),
    ["choose-right", { choice: "b" }],
  ];
  const fake = fakeRaterPage({
    testids,
    answers,
    parents: { "canvas-left": "pane-left", "canvas-right": "pane-right" },
    fetch,
  });
  if (mode !== "btc") {
    fake.el("pane-left").dataset.toggle = "left";
    fake.el("pane-right").dataset.toggle = "right";
  }
  const config = {
    code: "c0de",
    method: "triplet",
    layout: "triplet",
    triplet: { mode, ...TIMING },
    points: [],
    continuous: false,
    crop: { width: 256, height: 256 },
    gapDevicePx: 16,
    allowUndecided,
    minViewSeconds: 0,
    minFlips,
    urls: { state: "/s/state", judge: "/s/judge", session: "/s/" },
    csrfToken: "token",
    initial: {
      state: "rating",
      progress: { answered: 0, total: 10 },
      trial: trialAt(0),
      next: next ? trialAt(1) : null,
    },
  };
  const viewer = fakeViewer();
  const rater = startRater({ win: fake.win, root: fake.root, config, makeViewer: () => viewer });
  const press = (key) => {
    fake.doc.dispatch("keydown", keyEvent(key));
    fake.doc.dispatch("keyup", keyEvent(key));
  };
  const click = (testid, at = { x: 10, y: 10 }, from = at) => {
    fake.root.dispatch("pointerdown", { clientX: from.x, clientY: from.y });
    fake.root.dispatch("click", { target: fake.el(testid), clientX: at.x, clientY: at.y });
  };
  // Added to `fake`, not spread from it: its getters (pendingFrames, now) must stay live.
  return Object.defineProperties(fake, {
    rater: { value: rater },
    viewer: { value: viewer },
    posts: { value: posts },
    press: { value: press },
    click: { value: click },
  });
}

// -- keys -------------------------------------------------------------------------------

test("triplet keys: F, J and Space toggle (PTC); 1 left, 2 right, 0 not sure", () => {
  const commands = keyCommands({ layout: "triplet", allowUndecided: true, triplet: { mode: "ptc" } });
  assert.deepEqual(commands.get("f"), { type: "toggle", side: "left" });
  assert.deepEqual(commands.get("j"), { type: "toggle", side: "right" });
  assert.deepEqual(commands.get(" "), { type: "toggle", side: "both" });
  assert.deepEqual(commands.get("1"), { type: "answer", fields: { choice: "a" } });
  assert.deepEqual(commands.get("2"), { type: "answer", fields: { choice: "b" } });
  assert.deepEqual(commands.get("0"), { type: "answer", fields: { choice: "undecided" } });
  assert.equal(commands.get("a"), undefined); // A/B would read as a 2AFC pair's names
  assert.equal(commands.get("c"), undefined);
  assert.deepEqual(commands.get("r"), { type: "reset" });
});

test("triplet keys: 0 resets the view when not sure is not allowed; no mode means PTC", () => {
  const commands = keyCommands({ layout: "triplet", allowUndecided: false });
  assert.deepEqual(commands.get("0"), { type: "reset" });
  assert.deepEqual(commands.get("f"), { type: "toggle", side: "left" });
});

test("triplet keys: BTC's Space shows the triplet again and F/J do nothing", () => {
  const commands = keyCommands({ layout: "triplet", allowUndecided: true, triplet: { mode: "btc" } });
  assert.deepEqual(commands.get(" "), { type: "replay" });
  assert.equal(commands.get("f"), undefined);
  assert.equal(commands.get("j"), undefined);
  assert.deepEqual(commands.get("1"), { type: "answer", fields: { choice: "a" } });
});

test("toggle and replay keys reach their handlers; auto-repeat does not toggle", () => {
  const log = [];
  const handlers = {
    status: () => "ready",
    toggle: (side) => log.push("toggle " + side),
    replay: () => log.push("replay"),
    answer: (fields) => { log.push(fields); return true; },
  };
  const ptc = createKeyboard({ commands: keyCommands({ layout: "triplet" }), handlers });
  ptc.keydown(keyEvent("f"));
  ptc.keydown(keyEvent("f", { repeat: true }));
  ptc.keydown(keyEvent("F", { code: "KeyF" })); // Shift: the same key
  ptc.keydown(keyEvent("j"));
  ptc.keydown(keyEvent(" "));
  const btc = createKeyboard({ commands: keyCommands({ layout: "triplet", triplet: { mode: "btc" } }), handlers });
  btc.keydown(keyEvent(" "));
  btc.keydown(keyEvent("2"));
  assert.deepEqual(log, ["toggle left", "toggle left", "toggle right", "toggle both", "replay", { choice: "b" }]);
});

// -- pure parts -------------------------------------------------------------------------

test("btcFrame: 8 s of 100 ms phases, 3 s blank, then idle, at exact boundaries", () => {
  const at = (ms) => btcFrame(ms, TIMING);
  assert.deepEqual(at(0), { stage: "flicker", phase: 0 });
  assert.deepEqual(at(99.9), { stage: "flicker", phase: 0 });
  assert.deepEqual(at(100), { stage: "flicker", phase: 1 });
  assert.deepEqual(at(199.9), { stage: "flicker", phase: 1 });
  assert.deepEqual(at(200), { stage: "flicker", phase: 0 });
  assert.deepEqual(at(7899.9), { stage: "flicker", phase: 0 });
  assert.deepEqual(at(7900), { stage: "flicker", phase: 1 });
  assert.deepEqual(at(7999), { stage: "flicker", phase: 1 });
  assert.deepEqual(at(8000), { stage: "blank", phase: 0 });
  assert.deepEqual(at(10999), { stage: "blank", phase: 0 });
  assert.deepEqual(at(11000), { stage: "idle", phase: 0 });
  assert.deepEqual(at(60000), { stage: "idle", phase: 0 });
  assert.deepEqual(at(-5), { stage: "flicker", phase: 0 }); // a clock read before the start
});

test("btcSlots: test images, then the pivot on both sides, then three blank panes", () => {
  assert.deepEqual(btcSlots({ stage: "flicker", phase: 0 }), SHOWN);
  assert.deepEqual(btcSlots({ stage: "flicker", phase: 1 }), PIVOTS);
  assert.deepEqual(btcSlots({ stage: "blank", phase: 0 }), BLANK);
  assert.deepEqual(btcSlots({ stage: "idle", phase: 0 }), BLANK);
  assert.deepEqual(ptcSlots({ left: "reference", right: "b" }), { left: "reference", reference: "reference", right: "b" });
});

test("tripletOptions fills the defaults; other layouts have none", () => {
  assert.equal(tripletOptions({ layout: "pair" }), null);
  assert.deepEqual(tripletOptions({ layout: "triplet" }), { mode: "ptc", ...TIMING });
  assert.deepEqual(
    tripletOptions({ layout: "triplet", triplet: { mode: "btc", flickerMs: 50, showMs: 4000, blankMs: 0 } }),
    { mode: "btc", flickerMs: 50, showMs: 4000, blankMs: 3000 },
  );
});

// -- PTC --------------------------------------------------------------------------------

test("PTC: F toggles the left side to the pivot and back, J the right, Space both", () => {
  const page = triplet({ mode: "ptc" });
  assert.deepEqual(page.viewer.slots, SHOWN);
  assert.equal(page.el("label-left").textContent, "Left: test");
  page.press("f");
  assert.deepEqual(page.viewer.slots, { left: "reference", reference: "reference", right: "b" });
  assert.equal(page.el("pane-left").dataset.showing, "reference");
  assert.equal(page.el("pane-right").dataset.showing, "b");
  assert.equal(page.el("label-left").textContent, "Left: original");
  assert.equal(page.el("label-right").textContent, "Right: test");
  page.press("f");
  assert.deepEqual(page.viewer.slots, SHOWN);
  assert.equal(page.el("pane-left").dataset.showing, "a");
  assert.equal(page.el("label-left").textContent, "Left: test");
  page.press("j");
  assert.deepEqual(page.viewer.slots, { left: "a", reference: "reference", right: "reference" });
  assert.equal(page.el("label-right").textContent, "Right: original");
  page.press(" "); // each side toggles: left to the pivot, right back to its test image
  assert.deepEqual(page.viewer.slots, { left: "reference", reference: "reference", right: "b" });
  assert.equal(page.rater.trial.flips, 5); // f, f, j, and two for Space
  assert.equal(page.el("flip-count").textContent, "5 toggles");
  assert.equal(page.el("pane-reference").dataset.showing, "reference");
});

test("PTC: answers open after minFlips toggles, and the answer carries the flips", async () => {
  const page = triplet({ mode: "ptc", minFlips: 3 });
  assert.equal(page.root.dataset.answers, "closed");
  assert.equal(page.el("countdown").textContent, "Toggle 3 more times");
  assert.equal(page.el("choose-left").disabled, true);
  page.press("f");
  assert.equal(page.el("countdown").textContent, "Toggle 2 more times");
  page.press("1"); // closed: not taken
  await settle();
  assert.equal(page.posts.length, 0);
  page.press("j");
  assert.equal(page.el("countdown").textContent, "Toggle 1 more time");
  page.press(" ");
  assert.equal(page.root.dataset.answers, "open");
  assert.equal(page.el("countdown").hidden, true);
  assert.equal(page.el("choose-right").disabled, false);
  page.press("2");
  await settle();
  assert.equal(page.posts.length, 1);
  assert.equal(page.posts[0].choice, "b");
  assert.equal(page.posts[0].flips, 4);
  assert.equal(page.posts[0].position, 0);
  // The next trial starts with both test images and no toggles.
  assert.equal(page.viewer.shown.position, 1);
  assert.deepEqual(page.viewer.slots, SHOWN);
  assert.equal(page.el("label-left").textContent, "Left: test");
  assert.equal(page.el("flip-count").textContent, "0 toggles");
  assert.equal(page.root.dataset.answers, "closed");
});

test("PTC: the toggle buttons and a click on a side pane toggle it; a drag does not", () => {
  const page = triplet({ mode: "ptc" });
  page.el("toggle-right").dataset.action = "toggle-right";
  page.click("toggle-right");
  assert.equal(page.viewer.slots.right, "reference");
  page.click("canvas-left"); // on the canvas inside the left pane
  assert.equal(page.viewer.slots.left, "reference");
  page.click("canvas-left", { x: 60, y: 10 }, { x: 10, y: 10 }); // panned a zoomed view
  assert.equal(page.viewer.slots.left, "reference");
  page.click("pane-reference"); // the pivot does not toggle
  assert.deepEqual(page.viewer.slots, PIVOTS);
  assert.equal(page.rater.trial.flips, 2);
});

test("PTC: not-sure answers with 0 when allowed", async () => {
  const page = triplet({ mode: "ptc", minFlips: 0 });
  page.press("0");
  await settle();
  assert.equal(page.posts[0].choice, "undecided");
});

// -- BTC --------------------------------------------------------------------------------

test("BTC: each side flickers against the pivot every 100 ms for 8 s, then 3 s blank", () => {
  const page = triplet({ mode: "btc" });
  assert.equal(page.root.dataset.btcStage, "flicker");
  assert.deepEqual(page.viewer.slots, SHOWN);
  assert.equal(page.el("btc-status").textContent, "Showing… 8 s");
  assert.equal(page.el("show-again").disabled, true);
  const draws = page.viewer.draws;
  page.frame(16);
  page.frame(83); // 99 ms: same phase, nothing redrawn
  assert.equal(page.viewer.draws, draws);
  page.frame(1); // 100 ms
  assert.deepEqual(page.viewer.slots, PIVOTS);
  assert.equal(page.el("pane-left").dataset.showing, "reference");
  page.frame(100); // 200 ms
  assert.deepEqual(page.viewer.slots, SHOWN);
  assert.equal(page.el("pane-left").dataset.showing, "a");
  assert.equal(page.el("pane-right").dataset.showing, "b");
  page.frame(2800); // 3000 ms
  assert.equal(page.el("btc-status").textContent, "Showing… 5 s");
  page.frame(4999); // 7999 ms
  assert.equal(page.root.dataset.btcStage, "flicker");
  page.frame(1); // 8000 ms
  assert.equal(page.root.dataset.btcStage, "blank");
  assert.deepEqual(page.viewer.slots, BLANK);
  assert.equal(page.el("pane-reference").dataset.showing, "blank");
  assert.equal(page.el("btc-status").textContent, "Blank");
  assert.equal(page.el("show-again").disabled, true);
  page.press(" "); // too early: the blank runs its course
  page.frame(2999); // 10999 ms
  assert.equal(page.root.dataset.btcStage, "blank");
  assert.equal(page.rater.trial.flips, 0);
  page.frame(1); // 11000 ms
  assert.equal(page.root.dataset.btcStage, "idle");
  assert.deepEqual(page.viewer.slots, BLANK);
  assert.equal(page.el("btc-status").textContent, "Press Space to show again");
  assert.equal(page.el("show-again").disabled, false);
  assert.equal(page.pendingFrames, 0); // idle: the loop stops until shown again
});

test("BTC: Space or Show again replays the 8 s + 3 s cycle; replays are the flips", async () => {
  const page = triplet({ mode: "btc" });
  page.frame(11000);
  page.press(" ");
  assert.equal(page.root.dataset.btcStage, "flicker");
  assert.deepEqual(page.viewer.slots, SHOWN);
  assert.equal(page.el("show-again").disabled, true);
  assert.equal(page.rater.trial.flips, 1);
  page.frame(100);
  assert.deepEqual(page.viewer.slots, PIVOTS);
  page.frame(10900);
  assert.equal(page.root.dataset.btcStage, "idle");
  page.el("show-again").dataset.action = "show-again";
  page.click("show-again");
  assert.equal(page.root.dataset.btcStage, "flicker");
  page.press("1"); // during the flicker
  await settle();
  assert.equal(page.posts[0].choice, "a");
  assert.equal(page.posts[0].flips, 2);
});

test("BTC: an answer during the blank stage is accepted, and the next trial flickers anew", async () => {
  const page = triplet({ mode: "btc" });
  page.frame(9000);
  assert.equal(page.root.dataset.btcStage, "blank");
  assert.equal(page.root.dataset.answers, "open");
  page.press("2");
  await settle();
  assert.equal(page.posts.length, 1);
  assert.equal(page.posts[0].choice, "b");
  assert.equal(page.posts[0].flips, 0);
  assert.equal(page.posts[0].view_ms, 9000);
  assert.equal(page.viewer.shown.position, 1);
  assert.equal(page.root.dataset.btcStage, "flicker");
  assert.deepEqual(page.viewer.slots, SHOWN);
  page.frame(100); // the new trial's own clock
  assert.deepEqual(page.viewer.slots, PIVOTS);
  assert.equal(page.pendingFrames, 1); // one loop, not the old trial's as well
});

test("BTC: an answer with no next trial known stops the flicker while it is saved", async () => {
  const page = triplet({ mode: "btc", next: false });
  page.frame(100);
  page.press("1");
  assert.equal(page.rater.status, "saving");
  assert.equal(page.pendingFrames, 0);
  const draws = page.viewer.draws;
  page.frame(100);
  assert.equal(page.viewer.draws, draws);
  await settle(); // the server's answer brings the next trial
  assert.equal(page.viewer.shown.position, 1);
  assert.equal(page.root.dataset.btcStage, "flicker");
});

test("BTC: the flicker holds while the tab is hidden (it counts visible time only)", () => {
  const page = triplet({ mode: "btc" });
  page.frame(4000);
  page.doc.visibilityState = "hidden";
  page.doc.dispatch("visibilitychange", {});
  page.frame(6000); // a browser runs no frames while hidden; even if it did, time stands
  assert.equal(page.root.dataset.btcStage, "flicker");
  page.doc.visibilityState = "visible";
  page.doc.dispatch("visibilitychange", {});
  page.frame(3999);
  assert.equal(page.root.dataset.btcStage, "flicker");
  page.frame(1);
  assert.equal(page.root.dataset.btcStage, "blank");
});

test("BTC: destroy() stops the flicker and frees the viewer", () => {
  const page = triplet({ mode: "btc" });
  page.rater.destroy();
  assert.equal(page.pendingFrames, 0);
  assert.equal(page.viewer.destroyed, true);
  const draws = page.viewer.draws;
  page.frame(100);
  assert.equal(page.viewer.draws, draws);
});
