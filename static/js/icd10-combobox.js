// ICD-10 combobox (ARIA 1.2 pattern): type a code prefix or words, pick with the arrows and Enter.

export class Icd10Combobox {
  constructor(input, list, searchUrl, onPick) {
    this.input = input;
    this.list = list;
    this.url = searchUrl;
    this.onPick = onPick;
    this.results = [];
    this.active = -1;
    this.timer = null;
    this.inflight = null;
    this.pickWhenReady = false;
    this.seq = 0;
    // "no match" said in words (a listbox may hold only options), read out by screen readers
    this.note = document.createElement("p");
    this.note.className = "combo-note";
    this.note.id = `${input.id}-note`;
    this.note.setAttribute("aria-live", "polite");
    this.note.hidden = true;
    list.parentElement.after(this.note);
    input.setAttribute("aria-describedby", this.note.id);
    input.addEventListener("input", () => this.changed());
    input.addEventListener("keydown", (e) => this.keydown(e));
    // close shortly after the field loses focus, unless focus came back meanwhile (a late timer
    // on a slow machine would otherwise hide the list the rater is now typing into)
    input.addEventListener("blur", () => setTimeout(() => {
      if (document.activeElement !== input) this.close();
    }, 150));
    list.addEventListener("mousedown", (e) => {
      const li = e.target.closest("li[role=option]");
      if (li) { e.preventDefault(); this.pick(Number(li.dataset.index)); }
    });
  }

  get busy() {
    return this.timer !== null || this.inflight !== null;
  }

  // Show a saved code without searching.
  set(entry) {
    this.input.value = entry ? `${entry.code} ${entry.name || ""}`.trim() : "";
    this.setNote("");
    this.close();
  }

  changed() {
    this.onPick(null);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; this.search(); }, 60);
  }

  async search() {
    const q = this.input.value.trim();
    const seq = ++this.seq;
    if (!q) { this.render([]); this.setNote(""); return; }
    const ctrl = new AbortController();
    if (this.inflight) this.inflight.abort();
    this.inflight = ctrl;
    try {
      const resp = await fetch(`${this.url}?q=${encodeURIComponent(q)}&limit=20`, {
        signal: ctrl.signal, headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      const body = await resp.json();
      if (seq !== this.seq) return;
      this.render(body.results || []);
      this.setNote(this.results.length ? "" : `No ICD-10 code matches “${q}”. Try other words or `
        + "a code, or tick “ICD-10 missing” (M) and type the diagnosis.");
    } catch (err) {
      if (err.name !== "AbortError") this.render([]);
    } finally {
      if (this.inflight === ctrl) this.inflight = null;
    }
    if (this.pickWhenReady && seq === this.seq) {
      this.pickWhenReady = false;
      if (this.results.length) this.pick(Math.max(this.active, 0));
    }
  }

  render(results) {
    this.results = results;
    this.active = results.length ? 0 : -1;
    this.list.replaceChildren(...results.map((r, i) => {
      const li = document.createElement("li");
      li.id = `icd10-opt-${i}`;
      li.setAttribute("role", "option");
      li.dataset.index = String(i);
      li.dataset.code = r.code;
      const b = document.createElement("b");
      b.textContent = r.code;
      li.append(b, document.createTextNode(r.name));
      return li;
    }));
    const open = results.length > 0;
    this.list.hidden = !open;
    this.input.setAttribute("aria-expanded", String(open));
    this.highlight();
  }

  setNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  highlight() {
    [...this.list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === this.active)));
    const li = this.list.children[this.active];
    if (li) {
      this.input.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    } else {
      this.input.removeAttribute("aria-activedescendant");
    }
  }

  close() {
    this.list.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  get open() {
    return !this.list.hidden;
  }

  pick(i) {
    const r = this.results[i];
    if (!r) return;
    this.input.value = `${r.code} ${r.name}`;
    this.close();
    this.onPick(r);
  }

  keydown(e) {
    const n = this.results.length;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      e.stopPropagation();
      if (!this.open && n) { this.list.hidden = false; this.input.setAttribute("aria-expanded", "true"); }
      if (n) this.active = (this.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      this.highlight();
    } else if (e.key === "Enter") {
      if (this.open && this.active >= 0) {
        e.preventDefault();
        e.stopPropagation();
        this.pick(this.active);
      } else if (this.busy) {  // typed and pressed Enter before the results came: pick the first
        e.preventDefault();
        e.stopPropagation();
        this.pickWhenReady = true;
      }
    } else if (e.key === "Escape" && this.open) {
      e.preventDefault();
      e.stopPropagation();
      this.close();
    }
  }
}
