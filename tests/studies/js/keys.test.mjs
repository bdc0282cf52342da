// Keyboard handling and the release rule (perceptlab/studies/static/studies/keys.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createKeyboard, keyCommands } from "../../../perceptlab/studies/static/studies/keys.js";

const CODES = { a: "KeyA", b: "KeyB", c: "KeyC", r: "KeyR", t: "KeyT", " ": "Space", Enter: "Enter" };

function event(key, extra = {}) {
  const code = CODES[key] || (/^[0-9]$/.test(key) ? "Digit" + key : key);
  return { key, code, repeat: false, target: {}, preventDefault() { this.prevented = true; }, ...extra };
}

function rater(config, { status = "ready", open = true } = {}) {
  const log = [];
  const state = { status, open };
  const keyboard = createKeyboard({
    commands: keyCommands(config),
    handlers: {
      status: () => state.status,
      answer(fields) {
        if (state.status !== "ready" || !state.open) return false;
        log.push(fields);
        return true;
      },
      submit() { log.push("submit"); return true; },
      continueFeedback() { log.push("continue"); },
      zoomBy(step) { log.push(`zoom ${step}`); },
      resetView() { log.push("reset"); },
      flip() { log.push("flip"); },
      zoomed: () => false,
      panKey(key) { log.push(key); },
      slide(delta) { log.push(`slide ${delta}`); },
      isSlider: () => false,
    },
  });
  return { keyboard, log, state };
}

const ACR = { layout: "single", points: [1, 2, 3, 4, 5].map((v) => ({ key: String(v), value: v })) };
const AFC = { layout: "pair", allowUndecided: true };

test("a second keydown without a keyup gives no second answer", () => {
  const { keyboard, log } = rater(ACR);
  keyboard.keydown(event("4"));
  keyboard.keydown(event("4")); // a bouncing switch: no keyup in between, repeat false
  keyboard.keydown(event("5")); // another answer key while the first is still down
  assert.deepEqual(log, [{ score: 4 }]);
  keyboard.keyup(event("4"));
  keyboard.keydown(event("5"));
  assert.deepEqual(log, [{ score: 4 }, { score: 5 }]);
});

test("auto-repeat never answers, even after a release", () => {
  const { keyboard, log } = rater(AFC);
  keyboard.keydown(event("a", { repeat: true }));
  assert.deepEqual(log, []);
  keyboard.keydown(event("a"));
  keyboard.keyup(event("a"));
  keyboard.keydown(event("b", { repeat: true }));
  assert.deepEqual(log, [{ choice: "a" }]);
});

test("the key is tracked physically: Shift between down and up still releases it", () => {
  const { keyboard, log } = rater(AFC);
  keyboard.keydown(event("a"));
  keyboard.keyup(event("A", { code: "KeyA" }));
  keyboard.keydown(event("b"));
  assert.deepEqual(log, [{ choice: "a" }, { choice: "b" }]);
});

test("a key pressed while answers are closed holds nothing", () => {
  const { keyboard, log, state } = rater(ACR, { open: false });
  keyboard.keydown(event("3"));
  state.open = true;
  keyboard.keydown(event("3", { repeat: true })); // still held down as answers open
  assert.deepEqual(log, []);
  keyboard.keyup(event("3"));
  keyboard.keydown(event("3"));
  assert.deepEqual(log, [{ score: 3 }]);
});

test("a lost focus forgets the held key (its keyup never arrives)", () => {
  const { keyboard, log } = rater(ACR);
  keyboard.keydown(event("2"));
  keyboard.blur();
  keyboard.keydown(event("2"));
  assert.deepEqual(log, [{ score: 2 }, { score: 2 }]);
});

test("feedback continues on Enter only once the answer key is up and not on repeat", () => {
  const { keyboard, log, state } = rater({ layout: "single", continuous: true });
  keyboard.keydown(event("Enter"));
  state.status = "feedback";
  keyboard.keydown(event("Enter"));
  keyboard.keydown(event("Enter", { repeat: true }));
  assert.deepEqual(log, ["submit"]);
  keyboard.keyup(event("Enter"));
  keyboard.keydown(event("Enter"));
  assert.deepEqual(log, ["submit", "continue"]);
});

test("zoom keys repeat and are not held back by an answer key", () => {
  const { keyboard, log } = rater(ACR);
  keyboard.keydown(event("4"));
  keyboard.keydown(event("+"));
  keyboard.keydown(event("+", { repeat: true }));
  keyboard.keydown(event("-"));
  keyboard.keydown(event("r"));
  keyboard.keydown(event("0"));
  assert.deepEqual(log, [{ score: 4 }, "zoom 1", "zoom 1", "zoom -1", "reset", "reset"]);
});

test("2AFC keys: A/B/C and 1/2/0, Space flips; modifiers are left to the browser", () => {
  const { keyboard, log } = rater(AFC);
  for (const key of ["a", "1", "b", "2", "c", "0"]) {
    keyboard.keydown(event(key));
    keyboard.keyup(event(key));
  }
  keyboard.keydown(event(" "));
  keyboard.keydown(event("a", { ctrlKey: true }));
  const choices = ["a", "a", "b", "b", "undecided", "undecided"].map((choice) => ({ choice }));
  assert.deepEqual(log, [...choices, "flip"]);
});

test("an eleven-point scale answers 10 with T", () => {
  const points = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((v) => ({ key: v === 10 ? "t" : String(v), value: v }));
  const { keyboard, log } = rater({ layout: "single", points });
  keyboard.keydown(event("T", { code: "KeyT" }));
  keyboard.keyup(event("t"));
  keyboard.keydown(event("0"));
  assert.deepEqual(log, [{ score: 10 }, { score: 0 }]);
});

test("arrows pan when zoomed and move the slider otherwise", () => {
  const commands = keyCommands({ layout: "single", continuous: true });
  const log = [];
  let zoomed = false;
  const keyboard = createKeyboard({
    commands,
    handlers: {
      status: () => "ready",
      zoomed: () => zoomed,
      panKey: (key) => log.push(key),
      slide: (delta) => log.push(delta),
      isSlider: () => false,
    },
  });
  keyboard.keydown(event("ArrowRight"));
  keyboard.keydown(event("ArrowDown"));
  zoomed = true;
  keyboard.keydown(event("ArrowLeft"));
  assert.deepEqual(log, [1, -1, "ArrowLeft"]);
});
