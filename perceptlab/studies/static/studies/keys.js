/*
 * Keyboard handling of the rating page: which key does what, and the release rule.
 *
 * Release rule: an answer key counts only if it went down after the key that gave the
 * previous answer came up. A double press, a held key (auto-repeat) or a bouncing switch
 * (a second keydown without a keyup) therefore never answers the next trial too; keys are
 * tracked by `event.code` (the physical key), so Shift or a layout change between down and
 * up cannot leave a key stuck. Auto-repeat (`event.repeat`) never answers and never
 * continues; only zoom keys repeat.
 *
 * No DOM access at import time: the app passes its handlers in, node tests pass fakes.
 */

const REPEATABLE = new Set(["+", "=", "-", "_"]);

/** The key as the command table names it: single characters lower-cased ("A" → "a"). */
export function keyOf(event) {
  return event.key.length === 1 ? event.key.toLowerCase() : event.key;
}

function physical(event) {
  return event.code || keyOf(event);
}

/**
 * Key → command for a study. Commands: {type: "zoom", step}, {type: "reset"},
 * {type: "flip"}, {type: "toggle", side: "left" | "right" | "both"}, {type: "replay"},
 * {type: "answer", fields}, {type: "submit"} (the slider's value).
 * layout: single | side_by_side | sequential | pair | triplet; triplet: {mode: "ptc" | "btc"}
 * of a triplet study; points: [{key, value}] of a category scale; "0" resets the view unless
 * it is an answer key.
 *
 * Triplet keys: F and J sit under the index fingers, one per side (PTC toggles that side
 * between its test image and the original); Space toggles both (PTC) or shows the boosted
 * triplet again (BTC). 1 = left, 2 = right, 0 = not sure; no A/B keys, which would read as
 * the sides' names of a 2AFC pair.
 */
export function keyCommands({
  layout,
  continuous = false,
  points = [],
  allowUndecided = false,
  triplet = null,
}) {
  const commands = new Map([
    ["+", { type: "zoom", step: 1 }],
    ["=", { type: "zoom", step: 1 }],
    ["-", { type: "zoom", step: -1 }],
    ["_", { type: "zoom", step: -1 }],
    ["r", { type: "reset" }],
  ]);
  if (layout === "pair" || layout === "sequential") commands.set(" ", { type: "flip" });
  const answer = (fields) => ({ type: "answer", fields });
  if (layout === "triplet") {
    if (triplet && triplet.mode === "btc") {
      commands.set(" ", { type: "replay" });
    } else {
      commands.set("f", { type: "toggle", side: "left" });
      commands.set("j", { type: "toggle", side: "right" });
      commands.set(" ", { type: "toggle", side: "both" });
    }
    commands.set("1", answer({ choice: "a" }));
    commands.set("2", answer({ choice: "b" }));
    if (allowUndecided) commands.set("0", answer({ choice: "undecided" }));
  } else if (layout === "pair") {
    ["a", "1"].forEach((key) => commands.set(key, answer({ choice: "a" })));
    ["b", "2"].forEach((key) => commands.set(key, answer({ choice: "b" })));
    if (allowUndecided) ["c", "0"].forEach((key) => commands.set(key, answer({ choice: "undecided" })));
  } else if (continuous) {
    commands.set("Enter", { type: "submit" });
  } else {
    points.forEach((point) => commands.set(point.key, answer({ score: Number(point.value) })));
  }
  if (!commands.has("0")) commands.set("0", { type: "reset" });
  return commands;
}

/**
 * The page's keydown/keyup/blur handlers.
 *
 * handlers:
 *   status(): the app's status (ready | feedback | paused | ...)
 *   answer(fields) -> boolean, submit() -> boolean: true when an answer was accepted
 *   continueFeedback(), zoomBy(step), resetView(), flip(), toggle(side), replay()
 *   zoomed() -> boolean; panKey(arrowKey); slide(delta); isSlider(target) -> boolean
 */
export function createKeyboard({ commands, handlers }) {
  let held = null; // the physical key that gave the last answer, until it comes up

  function released(event) {
    return held === null && !event.repeat;
  }

  function answered(event, accepted) {
    if (accepted) held = physical(event);
  }

  function onArrow(key, event) {
    if (handlers.isSlider(event.target)) return; // the slider's own arrow keys
    if (handlers.zoomed()) {
      event.preventDefault();
      handlers.panKey(key);
    } else if (handlers.status() === "ready" && handlers.slide) {
      event.preventDefault();
      handlers.slide(key === "ArrowRight" || key === "ArrowUp" ? 1 : -1);
    }
  }

  function keydown(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = keyOf(event);
    const status = handlers.status();
    if (status === "feedback") {
      if (key === "Enter" || key === " ") {
        event.preventDefault();
        if (released(event)) handlers.continueFeedback();
      }
      return;
    }
    if (key.startsWith("Arrow")) {
      onArrow(key, event);
      return;
    }
    const command = commands.get(key);
    if (!command) return;
    event.preventDefault();
    if (event.repeat && !REPEATABLE.has(key)) return;
    if (command.type === "zoom") handlers.zoomBy(command.step);
    else if (command.type === "reset") handlers.resetView();
    else if (command.type === "flip") handlers.flip();
    else if (command.type === "toggle") handlers.toggle(command.side);
    else if (command.type === "replay") handlers.replay();
    else if (!released(event)) return; // an answer key still down from the last answer
    else if (command.type === "answer") answered(event, handlers.answer(command.fields));
    else if (command.type === "submit") answered(event, handlers.submit());
  }

  function keyup(event) {
    if (held !== null && physical(event) === held) held = null;
  }

  return {
    keydown,
    keyup,
    /** Focus left the page: keyups are lost meanwhile, so nothing counts as held. */
    blur() { held = null; },
    get held() { return held; },
  };
}
