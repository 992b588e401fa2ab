// Deep zoom: once the rater zooms in, OpenSeadragon draws DZI tiles of the full-resolution original
// over the display copy, in exactly the view the Viewer computes (OpenSeadragon is only a renderer
// here: the Viewer keeps the pointer, wheel, keys and buttons). The display copy stays underneath,
// so nothing goes blank while tiles load. Tiles come from the rater's own item URL, never cached.

const OSD_OPTIONS = {
  // the two defaults that make it about ten times slower in Chromium without a GPU
  // (docs: browser-ml-zoom-recipe): WebGL on a software rasteriser, and one tile per frame
  drawer: "canvas",
  maxTilesPerFrame: 8,
  showNavigationControl: false,
  mouseNavEnabled: false,      // the Viewer owns the pointer and the wheel
  keyboardNavEnabled: false,   // the page's shortcuts (S, P, arrows...) stay the page's
  tabIndex: -1,                // not a tab stop: the stage is (the tiles are a picture of it)
  animationTime: 0,            // the Viewer sets each view immediately
  blendTime: 0,
  immediateRender: true,
  visibilityRatio: 0,
  minZoomImageRatio: 0,
  maxZoomPixelRatio: 64,
  preserveViewport: true,
  crossOriginPolicy: false,
  loadTilesWithAjax: false,
};

let scriptPromise = null;

// OpenSeadragon is loaded once, after the first image is painted (it is not needed before a zoom).
export function loadOpenSeadragon(src) {
  if (window.OpenSeadragon) return Promise.resolve(window.OpenSeadragon);
  if (!scriptPromise) {
    scriptPromise = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src;
      s.async = true;
      s.onload = () => resolve(window.OpenSeadragon);
      s.onerror = () => { scriptPromise = null; reject(new Error("the deep-zoom viewer did not load")); };
      document.head.append(s);
    });
  }
  return scriptPromise;
}

export class DeepZoom {
  constructor(stage, scriptUrl) {
    this.stage = stage;
    this.scriptUrl = scriptUrl;
    this.el = document.createElement("div");
    this.el.className = "deep-zoom";
    this.el.hidden = true;
    this.el.setAttribute("aria-hidden", "true");
    stage.append(this.el);
    this.osd = null;
    this.tilesUrl = null;    // the current item's tile description URL
    this.opening = null;     // Promise of the opened tiled image for tilesUrl
    this.openedFor = null;
    this.view = null;        // the last view asked for {zoom, cx, cy}
    this.fullWidth = null;   // the original's width, once its tiles are described
    this.state = "off";      // off | opening | on (tiles open) | unavailable
    stage.dataset.deepZoom = "off";
  }

  get available() {
    return Boolean(this.scriptUrl) && this.state !== "unavailable";
  }

  // A new item: forget the old tiles (the next zoom opens the new item's).
  reset(tilesUrl) {
    this.tilesUrl = tilesUrl;
    this.opening = null;
    this.openedFor = null;
    this.view = null;
    this.fullWidth = null;
    this.setState(tilesUrl && this.scriptUrl ? "off" : "unavailable");
    this.el.hidden = true;
    if (this.osd) this.osd.close();
  }

  setState(state) {
    this.state = state;
    this.stage.dataset.deepZoom = state;
  }

  // After the display copy is painted: load OpenSeadragon and open the item's tiles (hidden, so
  // no tile is fetched), leaving only the tiles of the view itself for the first zoom.
  preload() {
    if (!this.scriptUrl) return;
    loadOpenSeadragon(this.scriptUrl).then(() => this.prepare()).catch(() => {});
  }

  prepare() {
    if (!this.available || !this.tilesUrl || this.opening) return;
    this.setState("opening");
    const url = this.tilesUrl;
    this.opening = this.open().then((osd) => {
      if (!osd || url !== this.tilesUrl) return;
      this.setState("on");
      if (this.view) this.apply();
    }).catch(() => {
      if (url === this.tilesUrl) this.setState("unavailable");  // the display copy stays
    });
  }

  async open() {
    const url = this.tilesUrl;
    const OSD = await loadOpenSeadragon(this.scriptUrl);
    const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error(`tiles unavailable (${resp.status})`);
    const { tile_source: source } = await resp.json();
    if (url !== this.tilesUrl) return null;  // the rater moved on meanwhile
    if (!source) throw new Error("tiles not prepared yet");  // the display copy stays
    this.fullWidth = Number(source.Image.Size.Width) || null;
    if (!this.osd) this.osd = OSD({ element: this.el, ...OSD_OPTIONS });
    await new Promise((resolve, reject) => {
      const ok = () => { this.osd.removeHandler("open-failed", bad); resolve(); };
      const bad = (e) => { this.osd.removeHandler("open", ok); reject(new Error(e.message || "open failed")); };
      this.osd.addOnceHandler("open", ok);
      this.osd.addOnceHandler("open-failed", bad);
      this.osd.open(source);
    });
    if (url !== this.tilesUrl) return null;
    this.openedFor = url;
    return this.osd;
  }

  // Show the full-resolution view for the Viewer's view: zoom = shown image width / stage width,
  // (cx, cy) = the stage centre in image widths. Called on every view change while zoomed in.
  show(view) {
    this.view = view;
    if (!this.available || !this.tilesUrl) return;
    if (this.openedFor === this.tilesUrl) { this.apply(); return; }
    this.prepare();
  }

  apply() {
    const vp = this.osd.viewport;
    const { zoom, cx, cy } = this.view;
    this.el.hidden = false;
    vp.zoomTo(zoom, null, true);
    vp.panTo(new window.OpenSeadragon.Point(cx, cy), true);
    this.osd.forceRedraw();
  }

  // Back to the display copy alone (fit): the tiles stay open for the next zoom.
  hide() {
    this.view = null;
    this.el.hidden = true;
  }

  setFilter(css) {
    this.el.style.filter = css;
  }

  // Resolves when the current view is drawn from tiles at full resolution (read by tests and bench).
  whenSharp() {
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const check = () => {
        if (this.state === "unavailable") { reject(new Error("deep zoom unavailable")); return; }
        const item = this.osd && this.state === "on" && !this.el.hidden && this.osd.world.getItemAt(0);
        if (item && item.getFullyLoaded() && this.osd.viewport.getZoom(true) === this.osd.viewport.getZoom()) {
          resolve(performance.now() - started);
          return;
        }
        requestAnimationFrame(check);
      };
      // one frame first: until OpenSeadragon has updated, getFullyLoaded() describes the old view
      requestAnimationFrame(() => requestAnimationFrame(check));
    });
  }
}
