// Image viewer: fit to the stage, zoom (wheel, buttons, keys) around a point, pan (drag, keys),
// brightness and contrast as a CSS filter. Everything here changes the view only, never the image.
// Zoomed in, an optional DeepZoom (deep-zoom.js) draws the full-resolution original over the
// display copy in the same view; fitted, the display copy alone is shown.

const MIN_SCALE = 0.05;
const MAX_SCALE = 16;

export class Viewer {
  constructor(stage, img, controls, deep = null) {
    this.stage = stage;
    this.img = img;
    this.c = controls;
    this.deep = deep;
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.fitted = true;
    this.bindPointer();
    this.bindControls();
    new ResizeObserver(() => { if (this.fitted) this.fit(); }).observe(stage);
  }

  // Show a new image (URL); resolves once it is decoded and fitted.
  async show(src, alt) {
    if (alt) this.img.alt = alt;
    if (this.img.src !== src) {
      this.img.src = src;
      try { await this.img.decode(); } catch { /* a broken image still gets laid out */ }
    }
    this.fit();
  }

  get natural() {
    return { w: this.img.naturalWidth || 1, h: this.img.naturalHeight || 1 };
  }

  fit() {
    const { w, h } = this.natural;
    const sw = this.stage.clientWidth, sh = this.stage.clientHeight;
    this.scale = Math.min(sw / w, sh / h) || 1;
    this.x = (sw - w * this.scale) / 2;
    this.y = (sh - h * this.scale) / 2;
    this.fitted = true;
    this.apply();
  }


  zoomTo(scale, cx = this.stage.clientWidth / 2, cy = this.stage.clientHeight / 2) {
    const s = Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale));
    this.x = cx - (cx - this.x) * (s / this.scale);
    this.y = cy - (cy - this.y) * (s / this.scale);
    this.scale = s;
    this.fitted = false;
    this.apply();
  }

  // 1:1 = one screen pixel per pixel of the original once deep zoom knows its size, else of the
  // display copy (the same thing for a photo no larger than the display copy)
  oneToOne() {
    const full = this.deep && this.deep.fullWidth;
    this.zoomTo(full ? full / this.natural.w : 1);
  }

  zoomBy(factor, cx, cy) {
    this.zoomTo(this.scale * factor, cx, cy);
  }

  panBy(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.fitted = false;
    this.apply();
  }

  setFilter(brightness, contrast) {
    this.img.style.filter = `brightness(${brightness}%) contrast(${contrast}%)`;
    if (this.deep) this.deep.setFilter(this.img.style.filter);
  }

  resetView() {
    this.c.brightness.value = 100;
    this.c.contrast.value = 100;
    this.setFilter(100, 100);
    this.fit();
  }

  apply() {
    this.img.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.img.classList.toggle("pixelated", this.scale >= 3);
    // the percentage is of the original once its size is known (deep zoom), else of the display copy
    const full = this.deep && this.deep.fullWidth;
    const pct = Math.round(this.scale * 100 * (full ? this.natural.w / full : 1));
    this.c.level.value = this.fitted ? `fit ${pct}%` : `${pct}%`;
    this.stage.dataset.scale = this.scale.toFixed(4);
    this.stage.dataset.offset = `${Math.round(this.x)},${Math.round(this.y)}`;
    if (!this.deep) return;
    if (this.fitted) { this.deep.hide(); return; }
    const shown = this.scale * this.natural.w;  // the image's width on screen, px
    const sw = this.stage.clientWidth || 1, sh = this.stage.clientHeight || 1;
    this.deep.show({ zoom: shown / sw, cx: (sw / 2 - this.x) / shown, cy: (sh / 2 - this.y) / shown });
  }

  bindPointer() {
    let drag = null;
    // Touch: one finger pans, two fingers pinch-zoom around their midpoint (and pan with it).
    const touches = new Map();
    let pinch = null;
    const pinchState = () => {
      const [a, b] = [...touches.values()];
      const r = this.stage.getBoundingClientRect();
      return {
        d: Math.hypot(a.x - b.x, a.y - b.y) || 1,
        cx: (a.x + b.x) / 2 - r.left,
        cy: (a.y + b.y) / 2 - r.top,
      };
    };
    this.stage.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = this.stage.getBoundingClientRect();
      this.zoomBy(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    this.stage.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      if (e.pointerType === "touch") {
        touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
        if (touches.size === 2) { drag = null; pinch = pinchState(); }
        if (touches.size > 1) { this.stage.setPointerCapture(e.pointerId); return; }
      }
      drag = { x: e.clientX, y: e.clientY };
      this.stage.setPointerCapture(e.pointerId);
      this.stage.classList.add("dragging");
    });
    this.stage.addEventListener("pointermove", (e) => {
      if (touches.has(e.pointerId)) touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (pinch && touches.size === 2) {
        const now = pinchState();
        this.panBy(now.cx - pinch.cx, now.cy - pinch.cy);
        this.zoomBy(now.d / pinch.d, now.cx, now.cy);
        pinch = now;
        return;
      }
      if (!drag) return;
      this.panBy(e.clientX - drag.x, e.clientY - drag.y);
      drag = { x: e.clientX, y: e.clientY };
    });
    const end = (e) => {
      touches.delete(e.pointerId);
      if (touches.size < 2) pinch = null;
      drag = null;
      this.stage.classList.remove("dragging");
    };
    this.stage.addEventListener("pointerup", end);
    this.stage.addEventListener("pointercancel", end);
    this.stage.addEventListener("dblclick", (e) => {
      const r = this.stage.getBoundingClientRect();
      if (this.fitted) this.zoomTo(1, e.clientX - r.left, e.clientY - r.top); else this.fit();
    });
  }

  bindControls() {
    const c = this.c;
    c.zoomIn.addEventListener("click", () => this.zoomBy(1.25));
    c.zoomOut.addEventListener("click", () => this.zoomBy(0.8));
    c.fit.addEventListener("click", () => this.fit());
    c.one.addEventListener("click", () => this.oneToOne());
    c.reset.addEventListener("click", () => this.resetView());
    const filter = () => this.setFilter(c.brightness.value, c.contrast.value);
    c.brightness.addEventListener("input", filter);
    c.contrast.addEventListener("input", filter);
  }
}
