/*
 * The instructions page's screen check: fills #screen-form with what the browser reports
 * (window and screen size, devicePixelRatio, touch points, a fine pointer, browser zoom)
 * and checks the window against the study's needs live, on every resize.
 *
 * The page embeds {width, height, controlsCss} as JSON (#size-check): the window needs
 * `width` device pixels across, and the crop height plus controlsCss CSS pixels of controls
 * (× devicePixelRatio) down; `height` is that need at devicePixelRatio 1. The page renders
 * Start disabled; the first check enables it. While the window is too small, Start stays
 * disabled, the page says how many device pixels are missing, and a "I cannot make the
 * window larger" button (gave_up=on) lets the rater leave.
 *
 * Importing it has no effect outside a browser page with #screen-form (node tests and
 * the rating page import its functions).
 */

/** Browser zoom estimate: outerWidth / innerWidth, 1 where unknown or implausible. */
export function zoomEstimate(win) {
  const zoom = win.outerWidth / win.innerWidth;
  if (!Number.isFinite(zoom) || zoom < 0.1 || zoom > 10) return 1;
  return Math.round(zoom * 100) / 100;
}

/** {needed: [w, h], have: [w, h], missing: [w, h]} in device pixels, as the server counts. */
export function measure(need, { innerWidth, innerHeight, devicePixelRatio }) {
  const dpr = devicePixelRatio || 1;
  const needed = [need.width, need.height - need.controlsCss + Math.round(need.controlsCss * dpr)];
  const have = [Math.round(innerWidth * dpr), Math.round(innerHeight * dpr)];
  const missing = [Math.max(0, needed[0] - have[0]), Math.max(0, needed[1] - have[1])];
  return { needed, have, missing };
}

/** The sentence the size check shows. */
export function describe({ missing }) {
  const [width, height] = missing;
  if (!width && !height) return "Your window is large enough for the images.";
  const parts = [];
  if (width) parts.push(width + " device pixels in width");
  if (height) parts.push(height + " device pixels in height");
  return (
    "Your window is too small for the images: it lacks " + parts.join(" and ") + ". " +
    "Enlarge the window (maximise it), or reset the browser zoom with Ctrl+0 (⌘+0 on a Mac)."
  );
}

function fill(form, win) {
  const set = (name, value) => {
    if (form.elements[name]) form.elements[name].value = String(value);
  };
  set("inner_width", win.innerWidth);
  set("inner_height", win.innerHeight);
  set("device_pixel_ratio", win.devicePixelRatio || 1);
  set("screen_width", (win.screen && win.screen.width) || 0);
  set("screen_height", (win.screen && win.screen.height) || 0);
  set("touch_points", (win.navigator && win.navigator.maxTouchPoints) || 0);
  set("zoom", zoomEstimate(win));
  const fine = form.elements.pointer_fine;
  if (fine) fine.disabled = !(win.matchMedia && win.matchMedia("(pointer: fine)").matches); // omitted
}

function check(form, win, need, report) {
  fill(form, win);
  const start = form.querySelector('[data-testid="start"]');
  if (!need || !report) {
    start.disabled = false; // nothing to check: the page renders Start disabled until now
    return;
  }
  const size = measure(need, win);
  const fits = !size.missing[0] && !size.missing[1];
  report.textContent = describe(size);
  report.dataset.fits = String(fits);
  report.classList.toggle("error", !fits);
  start.disabled = !fits;
  const giveUp = form.querySelector('[data-testid="give-up"]');
  if (giveUp) giveUp.hidden = fits;
}

/** Wire the screen check of the instructions page in `win`'s document. */
export function startScreenCheck(win) {
  const doc = win.document;
  const form = doc.getElementById("screen-form");
  if (!form) return;
  const needNode = doc.getElementById("size-check");
  const need = needNode ? JSON.parse(needNode.textContent) : null;
  const report = form.querySelector('[data-testid="size-check"]');
  const run = () => check(form, win, need, report);
  run();
  win.addEventListener("resize", run);
  form.addEventListener("submit", () => fill(form, win));
}

if (typeof document !== "undefined") startScreenCheck(window);
