// Pure parts of the rating and instructions pages: the trial clock, the size check.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createTrialClock, viewingNow } from "../../../perceptlab/studies/static/studies/app.js";
import { describe, measure, zoomEstimate } from "../../../perceptlab/studies/static/studies/instructions.js";

test("the trial clock counts visible time only, and hidden and paused time apart", () => {
  let now = 1000;
  const clock = createTrialClock(() => now);
  now += 400; // visible
  clock.setHidden(true);
  now += 1000; // tab hidden
  clock.setHidden(false);
  now += 100;
  clock.setPaused(true);
  now += 300; // a pane cut off
  clock.setHidden(true);
  now += 50; // hidden while paused: both
  clock.setHidden(false);
  clock.setPaused(false);
  now += 200;
  assert.deepEqual(clock.read(), { visibleMs: 700, hiddenMs: 1050, pausedMs: 350 });
});

test("a trial drawn while the tab is hidden starts its clock stopped", () => {
  let now = 0;
  const clock = createTrialClock(() => now, { hidden: true });
  now += 500;
  assert.equal(clock.running, false);
  assert.deepEqual(clock.read(), { visibleMs: 0, hiddenMs: 500, pausedMs: 0 });
});

test("the viewing report names the server's fields", () => {
  const win = { devicePixelRatio: 2, innerWidth: 800, innerHeight: 600, outerWidth: 1000, screen: { width: 1440, height: 900 } };
  assert.deepEqual(viewingNow(win), {
    dpr: 2, window_width: 800, window_height: 600, screen_width: 1440, screen_height: 900, zoom: 1.25,
  });
});

test("the zoom estimate is 1 where the browser does not say", () => {
  assert.equal(zoomEstimate({ innerWidth: 800 }), 1);
  assert.equal(zoomEstimate({ innerWidth: 0, outerWidth: 800 }), 1);
  assert.equal(zoomEstimate({ innerWidth: 1000, outerWidth: 1100 }), 1.1);
});

test("the size check counts device pixels as the server does", () => {
  const need = { width: 144, height: 224, controlsCss: 160 }; // 2 × 64 + 16; 64 + 160
  const at1 = measure(need, { innerWidth: 130, innerHeight: 200, devicePixelRatio: 1 });
  assert.deepEqual(at1.missing, [14, 24]);
  // dpr 2: 260 × 400 device pixels; needs 144 × (64 + 320)
  const at2 = measure(need, { innerWidth: 130, innerHeight: 200, devicePixelRatio: 2 });
  assert.deepEqual(at2.needed, [144, 384]);
  assert.deepEqual(at2.missing, [0, 0]);
  // dpr 1.25 (browser zoom 125 %): 64 + round(200) = 264 needed
  const zoomed = measure(need, { innerWidth: 115, innerHeight: 211, devicePixelRatio: 1.25 });
  assert.deepEqual(zoomed.have, [144, 264]);
  assert.deepEqual(zoomed.missing, [0, 0]);
});

test("the size check says what is missing and how to fix it", () => {
  assert.match(describe({ missing: [14, 0] }), /lacks 14 device pixels in width\. .*Ctrl\+0/);
  assert.match(describe({ missing: [3, 7] }), /3 device pixels in width and 7 device pixels in height/);
  assert.match(describe({ missing: [0, 0] }), /large enough/);
});
