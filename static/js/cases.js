// The case page: every photo of a case side by side, each with its own zoom and pan (viewer.js),
// brightness and contrast shared by all; one answer for the case or one per photo; keyboard-first;
// the next case's photos prefetched while the rater looks at this one.
import { Viewer } from "./viewer.js";
import { Icd10Combobox } from "./icd10-combobox.js";
import { DeepZoom } from "./deep-zoom.js";
import { skinQuestion } from "./skin-type-question.js";  // its keys run first (Shift+digit, T)

const $ = (id) => document.getElementById(id);
const root = $("case-page");
const S = JSON.parse(root.dataset.state);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
// photo keys: digits; Shift+digit where the digits answer; [ and ] where Shift+digits answer too
const shiftPhotos = root.dataset.photoMod === "shift";
const bracketPhotos = root.dataset.photoMod === "brackets";
const form = $("label-form");
const urlFor = (name, id) => S.urls[name].replace("__ID__", encodeURIComponent(id));

let cur = S.case;
let viewers = [];
let current = 0;          // the highlighted photo (the one answered, per image; zoom keys act on it)
let enlarged = null;      // index of the enlarged photo, or null (all side by side)
const answers = new Map(); // per image: photo id -> answer changed on this page
let pendingSubmission = null;
let busy = false;
// An S within this long of the case a skip brought up is that S pressed twice, not a decision about
// a case nobody has looked at yet (a fast server shows the next case within a double press's gap).
const SKIP_KEY_DWELL_MS = 300;
let skipShownAt = -Infinity;  // when the case the last skip brought up appeared
const cache = new Map();  // case id -> Promise<{data, srcs, imgs}>
const timings = (window.caseTimings = []); // submit key -> next case painted, ms (tests, bench)
const clock = { start: performance.now(), spent: 0, visible: !document.hidden };
const perCase = () => cur.unit === "case";

function spentMs() {
  return Math.round(clock.spent + (clock.visible ? performance.now() - clock.start : 0));
}
document.addEventListener("visibilitychange", () => {
  if (document.hidden && clock.visible) clock.spent += performance.now() - clock.start;
  if (!document.hidden) clock.start = performance.now();
  clock.visible = !document.hidden;
});

// ---- the answer form ---------------------------------------------------------------------------
const radios = [...form.querySelectorAll('input[name="decision"]')];
const boxes = [...form.querySelectorAll('input[name="explanations"]')];
const keyed = new Map([...form.querySelectorAll("[data-key]")].map((el) => [el.dataset.key.toUpperCase(), el]));
const icdInput = $("icd10-input");
const missingBox = $("icd10-missing");
const missingText = $("icd10-missing-text");
let chosen = null;
const combo = icdInput && new Icd10Combobox(icdInput, $("icd10-list"), S.urls.icd10, (entry) => {
  chosen = entry;
  $("icd10-chosen").textContent = entry ? `Chosen: ${entry.code} ${entry.name}` : "";
  formChanged();
});
const checked = () => radios.find((r) => r.checked) || null;

function syncVisibility() {
  const r = checked();
  for (const block of form.querySelectorAll("[data-for]")) block.hidden = !r || r.value !== block.dataset.for;
  if (missingBox) {
    for (const el of form.querySelectorAll(".missing-text")) el.hidden = !missingBox.checked;
    icdInput.disabled = missingBox.checked;
  }
}

function readForm() {
  const r = checked();
  if (!r) return null;
  const answer = r.value === "graded" ? { decision: "graded", grade: Number(r.dataset.grade) } : { decision: r.value };
  const why = boxes.filter((b) => b.checked && b.closest("[data-for]").dataset.for === r.value).map((b) => b.value);
  if (why.length) answer.explanations = why;
  if (r.value === "lesion") {
    if (missingBox.checked) answer.icd10_missing_text = missingText.value.trim() || null;
    else answer.icd10 = chosen ? chosen.code : null;
  }
  if (skinQuestion.on) answer.skin_type = skinQuestion.value();
  return answer;
}

function fillForm(answer) {
  for (const r of radios) {
    r.checked = !!answer && r.value === answer.decision
      && (r.value !== "graded" || Number(r.dataset.grade) === Number(answer.grade));
  }
  for (const b of boxes) b.checked = !!answer && (answer.explanations || []).includes(b.value);
  if (skinQuestion.on) skinQuestion.fill(answer);
  if (combo) {
    const code = answer && answer.icd10;
    chosen = code ? { code, name: answer.icd10_name || "" } : null;
    combo.set(chosen);
    $("icd10-chosen").textContent = chosen ? `Chosen: ${chosen.code} ${chosen.name}` : "";
    missingBox.checked = !!(answer && answer.icd10_missing_text);
    missingText.value = (answer && answer.icd10_missing_text) || "";
  }
  syncVisibility();
}

function describe(answer) {
  if (!answer) return "no answer yet";
  const r = radios.find((x) => x.value === answer.decision
    && (x.value !== "graded" || Number(x.dataset.grade) === Number(answer.grade)));
  const main = r ? r.closest("label").querySelector("span").textContent : answer.decision;
  const skin = skinQuestion.on && answer.skin_type != null ? skinQuestion.name(answer.skin_type) : "";
  return skin ? `${main}; ${skin}` : main;
}

// per image: what each photo's answer is now (changed here, else saved)
const answerOf = (photo) => answers.get(photo.item) || photo.label;

function formChanged() {
  if (!perCase()) {
    const photo = cur.photos[current];
    const a = readForm();
    if (a) answers.set(photo.item, a);
    renderAnswers();
  }
  setError("");
}
form.addEventListener("change", formChanged);
form.addEventListener("input", (e) => { if (e.target === missingText) formChanged(); });

function renderAnswers() {
  const list = $("photo-answers");
  list.hidden = perCase();
  if (perCase()) return;
  list.replaceChildren(...cur.photos.map((p, i) => {
    const li = document.createElement("li");
    li.textContent = `Photo ${i + 1}: ${describe(answerOf(p))}`;
    if (i === current) li.setAttribute("aria-current", "true");
    return li;
  }));
}

// ---- photos ------------------------------------------------------------------------------------
const brightness = $("brightness");
const contrast = $("contrast");
function applyFilter() { for (const v of viewers) v.setFilter(brightness.value, contrast.value); }
brightness.addEventListener("input", applyFilter);
contrast.addEventListener("input", applyFilter);
$("view-reset").addEventListener("click", () => {
  brightness.value = 100;
  contrast.value = 100;
  for (const v of viewers) v.resetView();
});

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function photoKey(i) { return bracketPhotos ? "" : `${shiftPhotos ? "Shift+" : ""}${i + 1}`; }

function renderPhotos(data, srcs, decoded) {
  const box = $("photos");
  const n = data.photos.length;
  box.dataset.count = n;
  const figures = data.photos.map((photo, i) => {
    const fig = el("figure", { class: "case-photo", "data-index": i });
    const stage = el("div", {
      class: "stage", tabindex: "0",
      "aria-label": `Photo ${i + 1} of ${n}. Drag or use the arrow keys to pan; wheel, plus and minus to zoom.`,
    });
    const img = decoded[i] || el("img");
    img.alt = `Photo ${i + 1} of ${n}`;
    img.draggable = false;
    stage.append(img);
    const cap = el("figcaption");
    const title = el("button", { type: "button", class: "photo-title", title: "Enlarge this photo (again: all photos)" });
    title.append(`Photo ${i + 1} `);
    if (i < 9 && photoKey(i)) title.append(el("kbd", { "aria-hidden": "true" }, photoKey(i)));
    title.addEventListener("click", () => (enlarged === i ? shrink() : enlarge(i)));
    cap.append(title);
    const facts = [photo.body_site ? `Body site: ${photo.body_site}` : "", ...photo.details.map((d) => `${d.name}: ${d.value}`)];
    const text = facts.filter(Boolean).join(" · ");
    if (text) cap.append(el("span", { class: "photo-facts" }, text));
    const tools = el("div", { class: "photo-tools", role: "group", "aria-label": `Zoom photo ${i + 1}` });
    const out = el("button", { type: "button", "aria-label": `Zoom out photo ${i + 1}` }, "−");
    const level = el("output", { "aria-live": "off" }, "fit");
    const inn = el("button", { type: "button", "aria-label": `Zoom in photo ${i + 1}` }, "+");
    const fit = el("button", { type: "button", "aria-label": `Fit photo ${i + 1}` }, "Fit");
    const one = el("button", { type: "button", "aria-label": `Photo ${i + 1} at 1:1` }, "1:1");
    tools.append(out, level, inn, fit, one);
    cap.append(tools);
    fig.append(stage, cap);
    stage.addEventListener("focus", () => setCurrent(i));
    const dummy = () => el("input", { type: "range", value: "100" });
    // full resolution once this photo is zoomed in: OpenSeadragon and the photo's tiles load on
    // the first zoom only (deep-zoom.js), under the photo's own opaque item id
    const deep = S.urls.osd ? new DeepZoom(stage, S.urls.osd) : null;
    if (deep) deep.reset(urlFor("tiles", photo.item));
    const viewer = new Viewer(stage, img, {
      zoomIn: inn, zoomOut: out, fit, one, level, brightness: dummy(), contrast: dummy(), reset: el("button"),
    }, deep);
    return { fig, viewer, src: srcs[i], photo };
  });
  box.replaceChildren(...figures.map((f) => f.fig));
  viewers = figures.map((f) => f.viewer);
  window.caseViewers = viewers;  // read by tests (zoom, deep zoom)
  applyFilter();
  return Promise.all(figures.map((f, i) => f.viewer.show(f.src, `Photo ${i + 1} of ${n}`)));
}

function enlarge(i) {
  enlarged = i;
  root.classList.add("enlarged");
  for (const fig of $("photos").children) fig.classList.toggle("is-enlarged", Number(fig.dataset.index) === i);
  $("grid-back").hidden = false;
  setCurrent(i);
  requestAnimationFrame(() => viewers[i] && viewers[i].fit());
}
function shrink() {
  enlarged = null;
  root.classList.remove("enlarged");
  for (const fig of $("photos").children) fig.classList.remove("is-enlarged");
  $("grid-back").hidden = true;
  requestAnimationFrame(() => viewers.forEach((v) => v.fit()));
}
$("grid-back").addEventListener("click", shrink);

function setCurrent(i) {
  if (i === current && $("photos").querySelector(".is-current")) return;
  current = i;
  for (const fig of $("photos").children) {
    const on = Number(fig.dataset.index) === i;
    fig.classList.toggle("is-current", on);
    if (on) fig.setAttribute("aria-current", "true"); else fig.removeAttribute("aria-current");
  }
  if (!perCase()) {
    $("current-photo").textContent = String(i + 1);
    fillForm(answerOf(cur.photos[i]));
    renderAnswers();
  }
}

// ---- loading, prefetching ------------------------------------------------------------------------
async function fetchJson(url, options = {}) {
  const res = await fetch(url, {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrf, ...(options.headers || {}) },
  });
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  return { status: res.status, body };
}

// A photo fetched and decoded ahead: the decoded <img> itself is put on the page later, so showing
// the case costs no second decode.
async function loadPhoto(url) {
  const res = await fetch(url, { credentials: "same-origin" });
  if (!res.ok) return { src: url, img: null };
  const src = URL.createObjectURL(await res.blob());
  const img = new Image();
  img.src = src;
  try { await img.decode(); } catch { /* shown as broken */ }
  return { src, img };
}

async function loadCase(ref) {
  const info = await fetchJson(urlFor("case", ref));
  if (info.status !== 200) throw new Error(info.body?.error?.message || `could not load the case (${info.status})`);
  const photos = await Promise.all(info.body.case.photos.map((p) => loadPhoto(p.image_url)));
  return { data: info.body.case, srcs: photos.map((p) => p.src), imgs: photos.map((p) => p.img) };
}

function prefetch(ref) {
  if (!ref || cache.has(ref)) return;
  const p = loadCase(ref);
  p.catch(() => cache.delete(ref));
  cache.set(ref, p);
}

function release(entry) {
  for (const src of entry.srcs) if (src.startsWith("blob:")) setTimeout(() => URL.revokeObjectURL(src), 5000);
}

function renderContext() {
  const p = cur.progress;
  $("progress").max = p.cases || 1;
  $("progress").value = p.cases_done;
  $("done-text").textContent = `${p.cases_done} of ${p.cases} cases labeled`;
  $("photo-count").textContent = String(cur.photos.length);
}

async function show(entry, { push = true } = {}) {
  cur = entry.data;
  answers.clear();
  pendingSubmission = null;
  setError("");
  $("all-done").hidden = true;
  if (enlarged !== null) shrink();
  current = -1;
  const shown = renderPhotos(cur, entry.srcs, entry.imgs || []);
  setCurrent(0);
  if (perCase()) fillForm(cur.label);
  renderContext();
  if (push) history.pushState({ case: cur.case }, "", urlFor("page", cur.case));
  clock.spent = 0;
  clock.start = performance.now();
  if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  await shown;
}

async function refresh() {
  // the next case's JSON was read before the last save: read it again for the current pointers
  const ref = cur.case;
  const info = await fetchJson(urlFor("case", ref));
  if (info.status !== 200 || ref !== cur.case) return;
  cur.next = info.body.case.next;
  cur.progress = info.body.case.progress;
  renderContext();
  for (const [key, p] of cache) {
    if (key !== cur.next) { cache.delete(key); p.then(release).catch(() => {}); }
  }
  prefetch(cur.next);
}

// ---- saving ------------------------------------------------------------------------------------
const statusLine = $("status");
function setStatus(text) { statusLine.textContent = text; }
function setError(text) { $("form-error").textContent = text; }

function firstUnanswered() {
  return cur.photos.findIndex((p) => !answerOf(p));
}

async function submit() {
  if (busy) return;
  const t0 = performance.now();
  let body;
  if (perCase()) {
    const answer = readForm();
    if (!answer) { setError("Choose an answer for the case first."); return; }
    body = { answer, base_version: cur.label ? cur.label.version : 0 };
  } else {
    if (!answerOf(cur.photos[current])) { setError(`Choose an answer for photo ${current + 1} first.`); return; }
    const missing = firstUnanswered();
    if (missing >= 0) {  // Enter walks to the next photo without an answer
      if (enlarged !== null) enlarge(missing); else setCurrent(missing);
      setStatus(`Photo ${missing + 1} next.`);
      return;
    }
    const changed = {};
    for (const p of cur.photos) {
      if (answers.has(p.item)) changed[p.item] = { ...answers.get(p.item), base_version: p.label ? p.label.version : 0 };
    }
    if (!Object.keys(changed).length) { await next(t0); return; }
    body = { answers: changed };
  }
  busy = true;
  // kept across network retries so the server can drop duplicates; crypto.randomUUID exists only in
  // secure contexts (HTTPS or localhost), so a server reached over plain HTTP needs the fallback
  pendingSubmission ??= (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
  const res = await fetchJson(urlFor("label", cur.case), {
    method: "PUT",
    body: JSON.stringify({ ...body, items: cur.photos.map((p) => p.item), submission_id: pendingSubmission, time_spent_ms: spentMs() }),
  }).catch(() => ({ status: 0, body: null }));
  busy = false;
  if (res.status === 0) { setError("Could not reach the server; your answer was not saved. Press Enter to try again."); return; }
  if (res.status !== 200) {
    pendingSubmission = null;
    setError(res.body?.error?.message || `Could not save (${res.status}).`);
    return;
  }
  cur.progress = res.body.case.progress;
  setStatus("Saved.");
  const savedCase = cur.case;
  await next(t0, performance.now() - t0);
  showSavedNote(savedCase);
}

// "Saved - change it": the case just saved stays one click away after the move to the next one
// (labels are never deleted: changing it saves a new version)
function showSavedNote(ref) {
  const note = $("saved-note");
  if (!note || ref === cur.case) return;
  const link = el("a", { href: urlFor("page", ref), id: "saved-case-link" }, "Change the case you just saved");
  note.replaceChildren("Saved. ", link);
  note.hidden = false;
}

async function next(t0, saved = 0) {
  const ref = cur.next;
  if (!ref) { $("all-done").hidden = false; renderContext(); setStatus("Saved. Your queue is complete."); return; }
  prefetch(ref);
  let entry;
  try { entry = await cache.get(ref); } catch (err) { setError(`Could not open the next case: ${err.message}`); return; }
  cache.delete(ref);
  await show(entry);
  requestAnimationFrame(() => setTimeout(() => timings.push({ saved, painted: performance.now() - t0 }), 0));
  refresh();
}

form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });

async function skip() {
  if (busy) return;  // not while a save or another skip of this case is on its way
  busy = true;
  try {  // busy until the next case is shown: an S meanwhile would skip the old case again
    const res = await fetchJson(urlFor("skip", cur.case), { method: "POST", body: "{}" })
      .catch(() => ({ status: 0, body: null }));
    if (res.status === 0) { setError("Could not reach the server; the case was not skipped."); return; }
    if (res.status !== 200) { setError(res.body?.error?.message || "Could not skip."); return; }
    setStatus("Skipped: this case comes back after the others.");
    await next(performance.now());
    skipShownAt = performance.now();
  } finally {
    busy = false;
  }
}
$("skip").addEventListener("click", skip);

window.addEventListener("popstate", (e) => {
  const ref = (e.state && e.state.case) || S.case.case;
  if (ref !== cur.case) location.assign(urlFor("page", ref));
});
history.replaceState({ case: cur.case }, "", location.href);

// ---- keyboard ----------------------------------------------------------------------------------
function choose(node) {
  if (node.type === "radio") {
    node.checked = true;
    syncVisibility();
    if (node.value === "lesion" && icdInput && !missingBox.checked) { icdInput.focus(); icdInput.select(); }
  } else if (node === missingBox) {
    radios.find((r) => r.value === "lesion").checked = true;
    missingBox.checked = !missingBox.checked;
    syncVisibility();
    (missingBox.checked ? missingText : icdInput).focus();
  } else if (node.name === "explanations") {
    const owner = node.closest("[data-for]").dataset.for;
    const decision = radios.find((r) => r.value === owner);
    if (decision && !decision.checked) { decision.checked = true; syncVisibility(); }
    node.checked = !node.checked;
  }
  formChanged();
}

const PAN = 60;
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
  const t = e.target;
  if (t.matches && t.matches('input[type="text"], input:not([type]), textarea, select')) {
    if (e.key === "Escape") { e.preventDefault(); t.blur(); }
    return;
  }
  if (bracketPhotos && (e.key === "[" || e.key === "]")) {
    e.preventDefault();
    const from = enlarged === null ? current : enlarged;
    const n = cur.photos.length;
    enlarge((Math.max(0, from) + (e.key === "]" ? 1 : n - 1)) % n);
    return;
  }
  const digit = /^Digit([1-9])$/.exec(e.code || "");
  if (digit && !bracketPhotos && e.shiftKey === shiftPhotos) {
    const i = Number(digit[1]) - 1;
    if (i < cur.photos.length && (shiftPhotos || !keyed.has(digit[1]))) {
      e.preventDefault();
      enlarge(i);
      return;
    }
  }
  const key = e.key.length === 1 ? e.key.toUpperCase() : e.key;
  const v = viewers[Math.max(0, current)];
  const onControl = t.matches && t.matches('input[type="radio"], input[type="range"]');
  if (key.startsWith("Arrow")) {
    if (onControl || !v) return;
    e.preventDefault();
    const step = e.shiftKey ? PAN * 4 : PAN;
    const d = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] }[key];
    v.panBy(...d);
    return;
  }
  if (t.matches && t.matches("button, a, summary") && (key === "Enter" || key === " ")) return;
  if (e.shiftKey && /^Digit/.test(e.code || "")) return;  // Shift+digit is a photo key or nothing
  const node = keyed.get(key);
  if (node) { e.preventDefault(); choose(node); return; }
  const actions = {
    Enter: submit, S: skip,
    "+": () => v && v.zoomBy(1.25), "=": () => v && v.zoomBy(1.25), "-": () => v && v.zoomBy(0.8),
    _: () => v && v.zoomBy(0.8), W: () => v && v.fit(), Z: () => v && v.oneToOne(),
    "?": () => { const h = document.querySelector(".help"); h.open = !h.open; },
    Escape: () => {
      if (enlarged !== null) shrink();
      else if (document.activeElement) document.activeElement.blur();
    },
  };
  // a held S, or S pressed twice as the next case appears, skips one case, not the queue
  if (key === "S" && (e.repeat || performance.now() - skipShownAt < SKIP_KEY_DWELL_MS)) { e.preventDefault(); return; }
  if (actions[key]) { e.preventDefault(); actions[key](); }
});

// ---- start -------------------------------------------------------------------------------------
const first = { data: cur, srcs: cur.photos.map((p) => p.image_url) };
show(first, { push: false }).then(() => {
  renderAnswers();
  prefetch(cur.next);
  root.dataset.ready = "true";
});
