/*
 * PerceptLab image viewer: shows each stimulus's exact pixels, one image pixel per device
 * pixel, on one <canvas> per pane. ES module, no build step, no dependencies.
 *
 *   import { createViewer } from "./viewer.js";
 *   const viewer = createViewer({ root, config, onFitChange });
 *
 * root: the #rater element, holding one <canvas data-testid="canvas-<name>"> per pane, each in
 *   a <div class="viewport">. The pane names are "left", "reference", "test" and "right"; a
 *   layout has some of them, and the viewer takes those present, in DOM order: canvas-test
 *   (single, sequential), canvas-reference and canvas-test (side_by_side, pair),
 *   canvas-left, canvas-reference and canvas-right (triplet: the pivot in the middle).
 * config: the page's JSON config; the viewer reads crop {width, height} (device pixels of
 *   each pane at 1×), gapDevicePx (device pixels between panes) and urls.image and
 *   urls.images (see prepare).
 * onFitChange(fits): called when a resize, scroll or browser zoom cuts a pane off at the
 *   window's edge (false) or makes every pane whole again (true).
 *
 * The returned object:
 *   prepare(trial) -> Promise<void>  fetch and decode every non-null URL of trial.images into
 *     ImageBitmaps (cached by URL, at most 24); resolves when all are decoded, rejects when
 *     one fails (a failed URL is not cached, so a later prepare() retries it). Cheap when
 *     called again for the same trial. The images it lacks come in one request when there
 *     are several and config.urls has "image" (the prefix of one image's URL) and "images"
 *     (the bundle's: the tokens joined by "."), one request each otherwise.
 *   isPrepared(trial) -> boolean      every image of the trial is decoded.
 *   show(trial, slots)                synchronous: draws the trial in this frame. Resets the
 *     view to 1× with each image's top-left pixel on the pane's top-left device pixel (at 1×
 *     the whole crop is visible). slots = {reference: "reference", test: "a"} names the image
 *     ("reference" | "a" | "b", keys of trial.images) each pane shows; a pane the layout
 *     lacks is ignored; a pane whose slot is null or missing shows the background only (a
 *     blank pane, data-src ""). Call it only after prepare(trial) has resolved.
 *   setSlots(slots)                   flip, toggle or flicker: redraw with other images (or
 *     blanks), same zoom and pan.
 *   zoomBy(step)                      step +1 / -1 through 1×, 2×, 4×, keeping the centre.
 *   resetView()                       back to 1×, top-left.
 *   panBy(dxCssPx, dyCssPx)           move the pictures by CSS pixels (like a drag); zoomed only.
 *   panKey(key)                       "ArrowLeft" | "ArrowRight" | "ArrowUp" | "ArrowDown": move
 *                                     the view an eighth of a pane that way; zoomed only.
 *   zoom                              the current zoom (1, 2 or 4), a getter.
 *   fits() -> boolean                 every pane lies wholly inside the window's viewport.
 *   layout()                          recompute sizes (also done on resize and browser zoom).
 *   destroy()                         remove listeners and observers, free the bitmaps.
 *
 * All panes zoom and pan together; dragging a zoomed pane with the pointer pans them. The
 * pan is bounded by the trial's largest image, whichever panes show it, so a flip or a blank
 * pane never moves the view. After each draw of a trial the viewer calls
 * performance.mark("perceptlab:drawn").
 *
 * Why a canvas: an <img> is resampled by the browser whenever its CSS box does not land
 * exactly on the device-pixel grid (fractional devicePixelRatio, sub-pixel layout, zoom
 * transforms), and then few pixels on screen equal the stimulus. A canvas whose backing store
 * has exactly the size of its device-pixel content box (ResizeObserver's
 * device-pixel-content-box) is composited 1:1, and drawing into it with smoothing off, at
 * whole device-pixel offsets and whole zoom factors, copies or replicates pixels unchanged.
 * The stage exposes what is drawn, for tests: data-zoom, data-pan-x, data-pan-y (device
 * pixels of the zoomed image left of and above the pane) and data-exact ("true" when each
 * pane shows crop.width × crop.height device pixels 1:1; when not, the
 * [data-testid=pixel-warning] asks the rater to reset the browser zoom); each canvas's
 * data-src is the URL of the image it shows.
 */

const PANE_NAMES = ["left", "reference", "test", "right"];
const ZOOMS = [1, 2, 4];
const CACHE_SIZE = 24;
const BACKGROUND = "#6f6f6f";
// Keep pixels as stored: no colour management and no premultiplication on decode.
const DECODE_OPTIONS = {
  premultiplyAlpha: "none",
  colorSpaceConversion: "none",
  imageOrientation: "none",
};

export function createViewer({ root, config, onFitChange }) {
  const stage = root.querySelector('[data-testid="stage"]') || root;
  const warning = root.querySelector('[data-testid="pixel-warning"]');
  const panes = Array.from(root.querySelectorAll('canvas[data-testid^="canvas-"]'))
    .map((canvas) => ({ canvas, name: canvas.dataset.testid.slice("canvas-".length) }))
    .filter(({ name }) => PANE_NAMES.includes(name))
    .map(({ canvas, name }) => {
      const context = canvas.getContext("2d", { alpha: false });
      return { name, canvas, context, viewport: canvas.parentElement, bitmap: null };
    });
  const cache = new Map(); // url -> {promise, bitmap}; insertion order = least recently used first
  const view = { zoom: 0, x: 0, y: 0 }; // zoom: index into ZOOMS; x, y: device px, zoomed image
  let trial = null;
  let slots = {};
  let fitting = null;
  let dprQuery = null;
  let destroyed = false;

  // -- decoding -----------------------------------------------------------------------

  function urlsOf(t) {
    return Object.values((t && t.images) || {}).filter(Boolean);
  }

  function touch(url, entry) {
    cache.delete(url); // re-insert: most recently used last
    cache.set(url, entry);
  }

  function evict() {
    // Never free what is on screen, nor the shown trial's other images: a flip, a toggle or
    // the end of a blank needs them again without decoding.
    const shown = new Set(panes.map((pane) => pane.bitmap).concat(trialBitmaps()));
    for (const [url, entry] of cache) {
      if (cache.size <= CACHE_SIZE) break;
      if (entry.bitmap && shown.has(entry.bitmap)) continue; // never free what is on screen
      cache.delete(url);
      if (entry.bitmap) entry.bitmap.close();
    }
  }

  // A trial's images the viewer lacks come in one request when there are several (the
  // server's /imgs/ bundle: a multipart/form-data body of the PNGs, parsed by the browser),
  // one by one otherwise or when the page has no bundle URL.
  const imageUrl = (config.urls && config.urls.image) || "";
  const bundleUrl = (config.urls && config.urls.images) || "";
  const MAX_BUNDLE = 6; // images.MAX_BUNDLE

  function tokenOf(url) {
    if (!imageUrl || !url.startsWith(imageUrl)) return null;
    const token = url.slice(imageUrl.length);
    return /^[A-Za-z0-9_-]+$/.test(token) ? token : null;
  }

  async function fetchOne(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error("image " + url + ": HTTP " + response.status);
    return response.blob();
  }

  // One request for several images: a promise of each one's Blob, in the order of urls.
  function fetchTogether(urls) {
    const tokens = urls.map(tokenOf);
    const url = bundleUrl + tokens.join(".");
    const form = fetch(url, { credentials: "same-origin" }).then((response) => {
      if (!response.ok) throw new Error("images " + url + ": HTTP " + response.status);
      return response.formData();
    });
    return tokens.map((token) =>
      form.then((parts) => {
        const part = parts.get(token);
        if (!(part instanceof Blob)) throw new Error("images " + url + ": no part " + token);
        return part;
      }),
    );
  }

  // Cache an entry for url whose bitmap is decoded from the Blob `blob` promises.
  function remember(url, blob) {
    const entry = { promise: null, bitmap: null };
    entry.promise = blob
      .then((data) => createImageBitmap(data, DECODE_OPTIONS))
      .then(
        (bitmap) => {
          if (destroyed) bitmap.close();
          else entry.bitmap = bitmap;
        },
        (error) => {
          if (cache.get(url) === entry) cache.delete(url); // let a later prepare() retry
          throw error;
        },
      );
    cache.set(url, entry);
    evict();
    return entry;
  }

  function load(url) {
    const known = cache.get(url);
    if (known) {
      touch(url, known);
      return known.promise;
    }
    return remember(url, fetchOne(url)).promise;
  }

  function prepare(t) {
    const wanted = Array.from(new Set(urlsOf(t)));
    const missing = wanted.filter((url) => !cache.has(url));
    if (bundleUrl && missing.length > 1 && missing.length <= MAX_BUNDLE && missing.every(tokenOf)) {
      const blobs = fetchTogether(missing);
      missing.forEach((url, index) => remember(url, blobs[index]));
    }
    return Promise.all(wanted.map(load)).then(() => undefined);
  }

  function isPrepared(t) {
    return urlsOf(t).every((url) => {
      const entry = cache.get(url);
      return Boolean(entry && entry.bitmap);
    });
  }

  // The URL a pane shows: "" for a blank pane (its slot null or missing) or no trial.
  function urlFor(pane) {
    const slot = slots[pane.name];
    return (trial && slot && trial.images[slot]) || "";
  }

  function bitmapFor(pane) {
    const url = urlFor(pane);
    const entry = url ? cache.get(url) : null;
    return entry ? entry.bitmap : null;
  }

  // The decoded images of the shown trial, shown in a pane or not.
  function trialBitmaps() {
    return urlsOf(trial)
      .map((url) => cache.get(url))
      .filter((entry) => entry && entry.bitmap)
      .map((entry) => entry.bitmap);
  }

  // -- geometry -----------------------------------------------------------------------

  function ratio() {
    return window.devicePixelRatio || 1;
  }

  function zoom() {
    return ZOOMS[view.zoom];
  }

  // The trial's largest image, zoomed, in device px: bounds the shared pan. All of the
  // trial's images count, not only those on screen, so that blank panes (a triplet's blank
  // stage) or a flip to a smaller image keep the rater's pan.
  function contentSize() {
    let width = 0;
    let height = 0;
    panes.map((pane) => pane.bitmap).concat(trialBitmaps()).forEach((bitmap) => {
      if (!bitmap) return;
      width = Math.max(width, bitmap.width);
      height = Math.max(height, bitmap.height);
    });
    return { width: width * zoom(), height: height * zoom() };
  }

  // Whole device pixels: the zoomed image's pixels stay whole squares.
  function offset(position, content, pane) {
    if (content <= pane) return -Math.floor((pane - content) / 2); // smaller: centred
    return Math.min(content - pane, Math.max(0, Math.round(position)));
  }

  function clampView() {
    const content = contentSize();
    const paneW = config.crop.width;
    const paneH = config.crop.height;
    view.x = content.width > paneW ? Math.min(content.width - paneW, Math.max(0, view.x)) : 0;
    view.y = content.height > paneH ? Math.min(content.height - paneH, Math.max(0, view.y)) : 0;
  }

  // -- drawing ------------------------------------------------------------------------

  function draw() {
    panes.forEach((pane) => { pane.bitmap = bitmapFor(pane); });
    clampView();
    const z = zoom();
    const content = contentSize();
    const x = offset(view.x, content.width, config.crop.width);
    const y = offset(view.y, content.height, config.crop.height);
    panes.forEach((pane) => drawPane(pane, x, y, z));
    stage.dataset.zoom = String(z);
    stage.dataset.panX = String(x);
    stage.dataset.panY = String(y);
    root.classList.toggle("zoomed", z > 1);
    if (trial) performance.mark("perceptlab:drawn"); // not the empty panes drawn at start
  }

  function drawPane(pane, x, y, z) {
    const context = pane.context;
    pane.canvas.dataset.src = urlFor(pane);
    // Reset after every resize of the backing store (which resets the context state).
    context.imageSmoothingEnabled = false;
    context.fillStyle = BACKGROUND;
    context.fillRect(0, 0, pane.canvas.width, pane.canvas.height);
    if (!pane.bitmap) return;
    const w = pane.bitmap.width * z;
    const h = pane.bitmap.height * z;
    context.drawImage(pane.bitmap, -x, -y, w, h);
  }

  function show(t, nextSlots) {
    trial = t;
    slots = Object.assign({}, nextSlots);
    view.zoom = 0;
    view.x = 0;
    view.y = 0;
    draw();
  }

  function setSlots(nextSlots) {
    slots = Object.assign({}, nextSlots);
    draw();
  }

  // -- zoom and pan -------------------------------------------------------------------

  function zoomBy(step) {
    const next = Math.max(0, Math.min(ZOOMS.length - 1, view.zoom + step));
    if (next === view.zoom) return;
    const factor = ZOOMS[next] / ZOOMS[view.zoom];
    const cx = config.crop.width / 2;
    const cy = config.crop.height / 2;
    view.x = (view.x + cx) * factor - cx; // keep the pane's centre where it is
    view.y = (view.y + cy) * factor - cy;
    view.zoom = next;
    draw();
  }

  function resetView() {
    view.zoom = 0;
    view.x = 0;
    view.y = 0;
    draw();
  }

  function panBy(dxCssPx, dyCssPx) {
    if (zoom() === 1) return;
    const r = ratio();
    view.x -= dxCssPx * r; // dragging right shows more of the left
    view.y -= dyCssPx * r;
    draw();
  }

  function panKey(key) {
    const step = config.crop.width / 8 / ratio(); // CSS px: an eighth of a pane
    const moves = {
      ArrowLeft: [step, 0],
      ArrowRight: [-step, 0],
      ArrowUp: [0, step],
      ArrowDown: [0, -step],
    };
    if (moves[key]) panBy(moves[key][0], moves[key][1]);
  }

  // -- sizes: CSS box from the crop, backing store from the device-pixel content box ----

  function layout() {
    const r = ratio();
    root.style.setProperty("--pane-width", config.crop.width / r + "px");
    root.style.setProperty("--pane-height", config.crop.height / r + "px");
    root.style.setProperty("--gap", config.gapDevicePx / r + "px");
    align();
    watchRatio();
    draw();
    checkFit();
  }

  // Put each canvas's top-left corner on a device pixel (a relative offset of less than a
  // device pixel, which moves nothing else). Then its snapped device size is exactly the
  // crop, whatever fraction of a device pixel the centred layout left over.
  function align() {
    const r = ratio();
    let changed = false;
    panes.forEach((pane) => {
      const style = pane.canvas.style;
      style.left = "0px";
      style.top = "0px";
      const box = pane.canvas.getBoundingClientRect();
      const dx = (Math.round(box.left * r) - box.left * r) / r;
      const dy = (Math.round(box.top * r) - box.top * r) / r;
      style.left = dx + "px";
      style.top = dy + "px";
      changed = measure(pane, null) || changed;
    });
    if (changed) draw();
    reportExactness();
  }

  // Sizes the backing store to the device pixels the browser paints the canvas into, and
  // records whether those are exactly the crop. `device` is the observer's
  // devicePixelContentBoxSize entry (null: measure from the layout box). Returns whether the
  // backing store changed (which clears it).
  function measure(pane, device) {
    const r = ratio();
    const box = pane.canvas.getBoundingClientRect();
    let width;
    let height;
    const plausible = device && Math.abs(device.inlineSize - box.width * r) <= 1;
    if (device && !plausible) pane.emulated = true; // a box in CSS pixels: see emulatedExact
    if (plausible) {
      width = device.inlineSize; // the browser's own answer
      height = device.blockSize;
    } else {
      width = Math.round(box.right * r) - Math.round(box.left * r); // edges snapped to the grid
      height = Math.round(box.bottom * r) - Math.round(box.top * r);
    }
    pane.exact = width === config.crop.width && height === config.crop.height;
    if (pane.emulated) pane.exact = pane.exact && emulatedExact(box, r);
    return setBacking(pane, width, height);
  }

  // Chromium's DevTools device emulation (Playwright's device_scale_factor) lays the page out
  // and snaps boxes in CSS pixels, then scales the whole page by the ratio; it also reports
  // the device-pixel box in CSS pixels (microsoft/playwright#18591). Then the canvas is
  // painted unscaled only if its CSS-snapped edges land on whole device pixels, which for a
  // fractional ratio is the exception (1.5: an even CSS position and a crop divisible by 3).
  function emulatedExact(box, r) {
    const edges = [box.left, box.right, box.top, box.bottom].map((v) => Math.round(v) * r);
    const whole = edges.every((v) => Math.abs(v - Math.round(v)) < 1e-6);
    return whole && edges[1] - edges[0] === config.crop.width
      && edges[3] - edges[2] === config.crop.height;
  }

  function setBacking(pane, width, height) {
    if (pane.canvas.width === width && pane.canvas.height === height) return false;
    pane.canvas.width = width; // clears the canvas: the caller redraws in the same task
    pane.canvas.height = height;
    return true;
  }

  function onResize(entries) {
    let changed = false;
    entries.forEach((entry) => {
      const pane = panes.find((p) => p.canvas === entry.target);
      if (!pane) return;
      const device = entry.devicePixelContentBoxSize && entry.devicePixelContentBoxSize[0];
      changed = measure(pane, device || null) || changed;
    });
    // Observer callbacks run after layout and before paint: redrawn here, no frame is blank.
    if (changed) draw();
    reportExactness();
    checkFit();
  }

  // Exact when every pane paints crop.width × crop.height device pixels 1:1 and the page is
  // not pinch-zoomed (the compositor would scale it). Otherwise ask for the browser zoom that
  // makes it exact: the canvas shows every image pixel, but the screen resamples them.
  function reportExactness() {
    const pinched = window.visualViewport && Math.abs(window.visualViewport.scale - 1) > 1e-3;
    const exact = !pinched && panes.every((pane) => pane.exact !== false);
    stage.dataset.exact = String(exact);
    if (warning) warning.hidden = exact;
  }

  function watchRatio() {
    // Browser zoom changes devicePixelRatio; a resolution query fires once per change.
    if (dprQuery) dprQuery.removeEventListener("change", layout);
    dprQuery = window.matchMedia("(resolution: " + ratio() + "dppx)");
    dprQuery.addEventListener("change", layout);
  }

  // -- fit ----------------------------------------------------------------------------

  // A pane counts as cut off only when more than a pixel is outside the window: the grid
  // nudge moves a canvas by under one device pixel, and layout rounds to CSS pixels.
  const FIT_SLACK = 1;

  function fits() {
    const width = document.documentElement.clientWidth + FIT_SLACK;
    const height = document.documentElement.clientHeight + FIT_SLACK;
    return panes.every((pane) => {
      const box = pane.canvas.getBoundingClientRect();
      return box.left >= -FIT_SLACK && box.top >= -FIT_SLACK && box.right <= width &&
        box.bottom <= height;
    });
  }

  function checkFit() {
    const now = fits();
    if (now === fitting) return;
    fitting = now;
    if (onFitChange) onFitChange(now);
  }

  function onScroll() {
    align(); // scrolling may move the panes by a fraction of a device pixel
    checkFit();
  }

  // -- pointer drag -------------------------------------------------------------------

  function onPointerDown(event) {
    if (zoom() === 1 || event.button !== 0) return;
    const target = event.currentTarget;
    event.preventDefault();
    target.setPointerCapture(event.pointerId);
    let lastX = event.clientX;
    let lastY = event.clientY;
    const move = (e) => {
      panBy(e.clientX - lastX, e.clientY - lastY);
      lastX = e.clientX;
      lastY = e.clientY;
    };
    const end = () => {
      target.removeEventListener("pointermove", move);
      target.removeEventListener("pointerup", end);
      target.removeEventListener("pointercancel", end);
    };
    target.addEventListener("pointermove", move);
    target.addEventListener("pointerup", end);
    target.addEventListener("pointercancel", end);
  }

  // -- start and stop -----------------------------------------------------------------

  const observer = new ResizeObserver(onResize);
  panes.forEach((pane) => {
    try {
      observer.observe(pane.canvas, { box: "device-pixel-content-box" });
    } catch (error) {
      observer.observe(pane.canvas); // the box option is unknown to this browser
    }
    pane.viewport.addEventListener("pointerdown", onPointerDown);
  });
  window.addEventListener("resize", layout);
  window.addEventListener("scroll", onScroll, { passive: true });
  if (window.visualViewport) window.visualViewport.addEventListener("resize", reportExactness);
  layout();

  function destroy() {
    destroyed = true;
    observer.disconnect();
    window.removeEventListener("resize", layout);
    window.removeEventListener("scroll", onScroll);
    if (window.visualViewport) window.visualViewport.removeEventListener("resize", reportExactness);
    if (dprQuery) dprQuery.removeEventListener("change", layout);
    panes.forEach((pane) => pane.viewport.removeEventListener("pointerdown", onPointerDown));
    cache.forEach((entry) => { if (entry.bitmap) entry.bitmap.close(); });
    cache.clear();
  }

  return {
    prepare,
    isPrepared,
    show,
    setSlots,
    zoomBy,
    resetView,
    panBy,
    panKey,
    get zoom() {
      return zoom();
    },
    fits,
    layout,
    destroy,
  };
}
