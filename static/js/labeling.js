// The labeling page: keyboard-first answers, save-and-next with the next image prefetched,
// back, skip, the rater's saved answer on revisits, time spent per item.
import { Viewer } from "./viewer.js";
import { Icd10Combobox } from "./icd10-combobox.js";
import { DeepZoom } from "./deep-zoom.js";
import { skinQuestion } from "./skin-type-question.js";

const $ = (id) => document.getElementById(id);
const root = $("labeling");
const S = JSON.parse(root.dataset.state);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const form = $("label-form");
const hasDiagnosis = form.dataset.diagnosis === "true";  // the protocol's answers carry an ICD-10 diagnosis
const stage = $("stage");
const urlFor = (name, id) => S.urls[name].replace("__ID__", encodeURIComponent(id));

const deep = new DeepZoom(stage, S.urls.osd);  // full resolution once zoomed in
deep.reset(urlFor("tiles", S.item));
const viewer = new Viewer(stage, $("photo"), {
  zoomIn: $("zoom-in"), zoomOut: $("zoom-out"), fit: $("zoom-fit"), one: $("zoom-1"), level: $("zoom-level"),
  brightness: $("brightness"), contrast: $("contrast"), reset: $("view-reset"),
}, deep);
window.labelingViewer = viewer;  // read by tests/labeling/test_deep_zoom_browser.py
window.labelingDeepZoom = deep;

// ---- state -------------------------------------------------------------------------------------
let cur = { item: S.item, label: S.label, queue: S.queue, status: S.status, suggestion: S.suggestion, src: urlFor("image", S.item) };
let chosen = null;            // the picked ICD-10 entry {code, name}
let pendingSubmission = null; // kept across network retries so the server can drop duplicates
let busy = false;
const cache = new Map();      // public id -> Promise<{data, src}>
const timings = (window.labelingTimings = []); // submit key -> next image painted, ms (read by tests)
const clock = { start: performance.now(), spent: 0, visible: !document.hidden };

function spentMs() {
  return Math.round(clock.spent + (clock.visible ? performance.now() - clock.start : 0));
}
function resetClock() {
  clock.spent = 0;
  clock.start = performance.now();
}
document.addEventListener("visibilitychange", () => {
  if (document.hidden && clock.visible) clock.spent += performance.now() - clock.start;
  if (!document.hidden) clock.start = performance.now();
  clock.visible = !document.hidden;
});

// ---- form ---------------------------------------------------------------------------------------
const radios = [...form.querySelectorAll('input[name="decision"]')];
const explanationBoxes = [...form.querySelectorAll('input[name="explanations"]')];
const keyed = new Map([...form.querySelectorAll("[data-key]")].map((el) => [el.dataset.key.toUpperCase(), el]));
const icdInput = $("icd10-input");
const missingBox = $("icd10-missing");
const missingText = $("icd10-missing-text");
const combo = icdInput && new Icd10Combobox(icdInput, $("icd10-list"), S.urls.icd10, (entry) => {
  chosen = entry;
  $("icd10-chosen").textContent = entry ? `Chosen: ${entry.code} ${entry.name}` : "";
});

const checked = () => radios.find((r) => r.checked) || null;

function syncVisibility() {
  const r = checked();
  const decision = r ? r.value : null;
  form.querySelectorAll(".sub[data-for], .explanations[data-for]").forEach((el) => {
    el.hidden = el.dataset.for !== decision;
  });
  if (missingBox) {
    const missing = missingBox.checked;
    form.querySelectorAll(".missing-text").forEach((el) => { el.hidden = !missing; });
    icdInput.disabled = missing;
  }
}
form.addEventListener("change", () => { syncVisibility(); setError(""); });

function fillForm(label) {
  radios.forEach((r) => { r.checked = false; });
  explanationBoxes.forEach((b) => { b.checked = false; });
  chosen = null;
  if (combo) {
    combo.set(null);
    missingBox.checked = false;
    missingText.value = "";
    $("icd10-chosen").textContent = "";
  }
  if (label) {
    const radio = label.decision === "graded"
      ? radios.find((r) => Number(r.dataset.grade) === label.grade)
      : radios.find((r) => r.value === label.decision);
    if (radio) radio.checked = true;
    explanationBoxes.forEach((b) => { b.checked = (label.explanations || []).includes(b.value); });
    if (combo && label.icd10) {
      chosen = { code: label.icd10, name: label.icd10_name || "" };
      combo.set(chosen);
      $("icd10-chosen").textContent = `Chosen: ${chosen.code} ${chosen.name}`;
    }
    if (combo && label.icd10_missing_text) {
      missingBox.checked = true;
      missingText.value = label.icd10_missing_text;
    }
  }
  skinQuestion.fill(label);
  syncVisibility();
}

function payload() {
  const r = checked();
  if (!r) return null;
  const exps = explanationBoxes.filter((b) => b.checked && !b.closest("[hidden]")).map((b) => b.value);
  if (hasDiagnosis) {
    const lesion = r.value === "lesion";
    const missing = lesion && missingBox.checked;
    let icd10 = null;
    if (lesion && !missing) icd10 = chosen ? chosen.code : (icdInput.value.trim() || null);
    return {
      decision: r.value, icd10, icd10_missing_text: missing ? missingText.value : null,
      explanations: r.value === "poor_quality" ? exps : [], grade: null,
    };
  }
  return {
    decision: r.value, icd10: null, icd10_missing_text: null,
    explanations: r.value === "cannot_assess" ? exps : [],
    grade: r.value === "graded" ? Number(r.dataset.grade) : null,
  };
}

function sameAsSaved(body, label) {
  if (!label) return false;
  if ((body.skin_type ?? null) !== (label.skin_type ?? null)) return false;
  const norm = (s) => (s || "").trim().replace(/\s+/g, " ") || null;
  return body.decision === label.decision && (body.icd10 || null) === (label.icd10 || null)
    && norm(body.icd10_missing_text) === norm(label.icd10_missing_text)
    && (body.grade ?? null) === (label.grade ?? null)
    && JSON.stringify([...body.explanations].sort()) === JSON.stringify([...(label.explanations || [])].sort());
}

// ---- messages -----------------------------------------------------------------------------------
function setError(msg) { $("form-error").textContent = msg; }
function setStatus(msg) { $("status").textContent = msg; }

// After a failed save the rater's next keys are shortcuts again, not text typed into a field.
function leaveTextField() {
  const a = document.activeElement;
  if (a && a.matches('input[type="text"], input:not([type]), textarea')) {
    a.blur();
    stage.focus({ preventScroll: true });
  }
}

// An answer in the rater's words (the button's own text), never an internal code.
function answerName(label) {
  if (!label) return "";
  if (label.decision === "graded") {
    const r = radios.find((x) => Number(x.dataset.grade) === label.grade);
    return r ? r.closest("label").querySelector("span").textContent.trim() : `Grade ${label.grade}`;
  }
  const r = radios.find((x) => x.value === label.decision);
  const name = r ? r.closest("label").querySelector("span").textContent.trim() : label.decision;
  if (label.decision === "lesion") return `Lesion, ${label.icd10 || label.icd10_missing_text || ""}`.replace(/, $/, "");
  return name;
}

// "Saved - Undo": stays on screen through the move to the next image (the status line is cleared
// then). Labels are never deleted (docs/domain.md 3c), so Undo reopens the image just answered with
// its saved answer, to change it (a new version; the old one stays in the history) or keep it.
const notice = document.createElement("div");
notice.className = "notice";
notice.id = "notice";
notice.setAttribute("role", "status");
const noticeText = document.createElement("span");
const undoButton = document.createElement("button");
undoButton.type = "button";
undoButton.id = "undo";
undoButton.textContent = "Undo";
undoButton.title = "Reopen that image to change your answer (every version is kept)";
notice.append(noticeText, " ", undoButton);
notice.hidden = true;
$("saved-note").before(notice);
let undoItem = null;
let noticeTimer = null;
function notify(text, itemId) {
  noticeText.textContent = text;
  undoItem = itemId;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(clearNotice, 12000);
}
function clearNotice() {
  notice.hidden = true;
  undoItem = null;
}
undoButton.addEventListener("click", async () => {
  const id = undoItem;
  clearNotice();
  if (id && await goTo(id)) setStatus("Reopened: change the answer and save, or press Enter to keep it.");
});

function renderContext() {
  const q = cur.queue;
  $("pos-text").textContent = `Item ${q.position} of ${q.total}`;
  const bar = $("progress");
  bar.max = Math.max(q.total, 1);
  bar.value = q.done;
  bar.textContent = `${q.done} of ${q.total}`;
  $("done-text").textContent = `${q.done} of ${q.total} labeled`;
  renderSuggestion();
  $("back").disabled = !q.previous;
  const note = $("saved-note");
  if (cur.label) {
    note.hidden = false;
    note.textContent = `Your saved answer (version ${cur.label.version}) is shown. Change it and save, or press Enter to keep it.`;
  } else {
    note.hidden = true;
    note.textContent = "";
  }
}

// The model's suggestion under pre-labeling: the project shows it on every item or on none.
function renderSuggestion() {
  const box = $("suggestion");
  if (!box) return;
  box.hidden = !cur.suggestion;
  $("suggestion-text").textContent = cur.suggestion ? cur.suggestion.text : "";
}

// ---- loading and moving between items -----------------------------------------------------------
async function fetchJson(url, options = {}) {
  const resp = await fetch(url, {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", ...(options.body ? { "Content-Type": "application/json", "X-CSRFToken": csrf } : {}), ...(options.headers || {}) },
  });
  let body = null;
  try { body = await resp.json(); } catch { body = null; }
  return { status: resp.status, body };
}

async function loadItem(id) {
  const [info, blob] = await Promise.all([
    fetchJson(urlFor("label", id)),
    fetch(urlFor("image", id), { credentials: "same-origin" }).then((r) => (r.ok ? r.blob() : null)),
  ]);
  if (info.status !== 200) throw new Error(info.body?.error?.message || `could not load item (${info.status})`);
  const src = blob ? URL.createObjectURL(blob) : urlFor("image", id);
  const pre = new Image();
  pre.src = src;
  try { await pre.decode(); } catch { /* shown as broken */ }
  return { data: info.body, src };
}

// Keep the cached copy of the current item in step with what was just saved (back must show it).
function remember() {
  const { item, label, queue, status, suggestion, src } = cur;
  cache.set(item, Promise.resolve({ data: { item, label, queue, status, suggestion }, src }));
}

function prefetch(id) {
  if (!id || cache.has(id)) return;
  const p = loadItem(id);
  p.catch(() => cache.delete(id));
  cache.set(id, p);
}

function trimCache(keep) {
  for (const [id, p] of cache) {
    if (keep.includes(id)) continue;
    cache.delete(id);
    p.then((e) => { if (e.src.startsWith("blob:")) setTimeout(() => URL.revokeObjectURL(e.src), 5000); }).catch(() => {});
  }
}

async function refreshContext() {
  // The prefetched context was computed before the last save; fetch the current one.
  const id = cur.item;
  const info = await fetchJson(urlFor("label", id));
  if (info.status !== 200 || id !== cur.item) return;
  cur.queue = info.body.queue;
  cur.status = info.body.status;
  if (!pendingSubmission && info.body.label && (!cur.label || info.body.label.version !== cur.label.version)) {
    cur.label = info.body.label;
    fillForm(cur.label);
  }
  renderContext();
  keepPrefetching();
}

function keepPrefetching() {
  remember();
  trimCache([cur.item, cur.queue.next, cur.queue.previous]);
  prefetch(cur.queue.next);
}

// fresh: the next item as the save's answer served it (PUT ...?next=1): its position and the queue's
// progress are current, so the prefetched context needs no second request
async function show(entry, { push = true, fresh = null } = {}) {
  const d = entry.data;
  const queue = fresh ? { ...d.queue, position: fresh.position, total: fresh.total, done: fresh.done } : d.queue;
  cur = { item: d.item, label: d.label, queue, status: d.status, suggestion: d.suggestion, src: entry.src };
  pendingSubmission = null;
  setError("");
  $("all-done").hidden = true;
  hideSkip();
  fillForm(cur.label);
  renderContext();
  // the flag box and the guidelines panel follow the shown item (item-flag.js)
  root.dispatchEvent(new CustomEvent("labeling:item", { detail: { item: d.item, flag: d.flag } }));
  deep.reset(urlFor("tiles", d.item));
  const shown = viewer.show(entry.src, `Image ${d.queue.position} of ${d.queue.total}`);
  if (push) history.pushState({ item: d.item }, "", urlFor("page", d.item));
  resetClock();
  if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  await shown;
  if (fresh) keepPrefetching(); else refreshContext();
  setTimeout(() => deep.preload(), 300);
}

async function goTo(id, opts) {
  if (!id) return false;
  setStatus("");
  if (!cache.has(id)) $("stage-msg").hidden = false;
  prefetch(id);
  try {
    await show(await cache.get(id), opts);
  } catch (err) {
    setError(`Could not open that item: ${err.message}`);
    return false;
  } finally {
    $("stage-msg").hidden = true;
  }
  return true;
}

function allDone() {
  $("all-done").hidden = false;
  setStatus(`${$("status").textContent} Your queue is complete.`.trim());
}

// served: the next item the save's answer carried (null: the queue is complete); undefined when nothing
// was sent (an unchanged answer), then the queue context's next
async function afterSave(t0, served) {
  const saved = performance.now() - t0;
  const next = served === undefined ? cur.queue.next : served && served.id;
  if (!next) { allDone(); refreshContext(); return; }
  await goTo(next, served ? { fresh: served } : undefined);
  // one frame later the new image has been painted
  requestAnimationFrame(() => setTimeout(() => timings.push({ saved, painted: performance.now() - t0 }), 0));
}

// ---- saving ---------------------------------------------------------------------------------------
async function sendWithRetry(url, options) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetchJson(url, options);
    } catch (err) {  // network trouble: retry with the same submission id (the server drops duplicates)
      if (attempt >= 3) throw err;
      setStatus("Connection problem, retrying…");
      await new Promise((r) => setTimeout(r, 300 * 3 ** attempt));
    }
  }
}

async function submit() {
  if (busy) return;
  const t0 = performance.now();
  const body = payload();
  if (!body) { setError("Choose an answer first."); return; }
  if (skinQuestion.on) body.skin_type = skinQuestion.value();  // the optional second question
  if (sameAsSaved(body, cur.label)) { setStatus("Unchanged."); await afterSave(t0); return; }
  busy = true;
  pendingSubmission ??= (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
  try {
    // ?next=1: the answer also serves the next item, one round trip fewer per label
    const res = await sendWithRetry(`${urlFor("label", cur.item)}?next=1`, {
      method: "PUT",
      body: JSON.stringify({ ...body, base_version: cur.label ? cur.label.version : 0,
                             submission_id: pendingSubmission, time_spent_ms: spentMs() }),
    });
    const err = res.body && res.body.error;
    if (res.status === 200) {
      const { next: served, ...saved } = res.body;
      pendingSubmission = null;
      cur.label = saved;
      cur.status = "done";
      remember();
      setStatus(`Saved (version ${res.body.version}).`);
      const skin = res.body.skin_type != null ? `, ${skinQuestion.name(res.body.skin_type)}` : "";
      notify(`Saved: ${answerName(res.body)}${skin} (image ${cur.queue.position}).`, cur.item);
      busy = false;
      await afterSave(t0, served);
      return;
    }
    pendingSubmission = null;
    if (res.status === 409 && err && err.current) {
      cur.label = err.current;
      remember();
      fillForm(cur.label);
      renderContext();
      setError(`${err.message}. The saved answer is shown now.`);
    } else if (res.status === 401) {
      setError("Your session has ended: sign in again (your answer was not saved).");
    } else {
      setError(err ? err.message : `Could not save (HTTP ${res.status}).`);
    }
    leaveTextField();
  } catch {
    setError("Could not reach the server; your answer was not saved. Press Enter to try again.");
  } finally {
    busy = false;
  }
}

form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });

// ---- back, skip -----------------------------------------------------------------------------------
async function back() {
  if (!cur.queue.previous) { setStatus("This is the first item."); return; }
  await goTo(cur.queue.previous);
}
$("back").addEventListener("click", back);

const skipForm = $("skip-form");
function showSkip() {
  skipForm.hidden = false;
  $("skip-reason").value = "";
  $("skip-reason").focus();
}
function hideSkip() { skipForm.hidden = true; }
$("skip").addEventListener("click", showSkip);
$("skip-cancel").addEventListener("click", () => { hideSkip(); stage.focus(); });
skipForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const res = await sendWithRetry(urlFor("skip", cur.item), {
    method: "POST", body: JSON.stringify({ reason: $("skip-reason").value || null }),
  });
  if (res.status !== 200) { setError(res.body?.error?.message || "Could not skip."); return; }
  hideSkip();
  if (cur.status !== "done") cur.status = "skipped";
  remember();
  setStatus("Skipped: it comes back after the other images.");
  notify(`Skipped image ${cur.queue.position}: it comes back after the other images.`, cur.item);
  if (res.body.next) await goTo(res.body.next); else allDone();
});

window.addEventListener("popstate", (e) => {
  const id = (e.state && e.state.item) || S.item;
  if (id !== cur.item) goTo(id, { push: false });
});
history.replaceState({ item: cur.item }, "", location.href);

// ---- keyboard ---------------------------------------------------------------------------------------
function choose(el) {
  if (el.type === "radio") {
    el.checked = true;
    syncVisibility();
    // text typed but never picked is dropped, so "xyz", Esc, N, L, "acne" searches "acne"
    if (combo && !chosen && icdInput.value) combo.set(null);
    if (el.value === "lesion" && icdInput && !missingBox.checked) { icdInput.focus(); icdInput.select(); }
    else if (el.value === "lesion" && missingBox.checked) missingText.focus();
  } else if (el === missingBox) {
    const lesion = radios.find((r) => r.value === "lesion");
    lesion.checked = true;
    missingBox.checked = !missingBox.checked;
    syncVisibility();
    (missingBox.checked ? missingText : icdInput).focus();
  } else if (el.name === "explanations") {
    const owner = el.closest("[data-for]").dataset.for;
    const decision = radios.find((r) => r.value === owner);
    if (decision && !decision.checked) { decision.checked = true; syncVisibility(); }
    el.checked = !el.checked;
  }
  setError("");
}

const PAN = 60;
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
  const t = e.target;
  if (t.matches && t.matches('input[type="text"], input:not([type]), textarea, select')) {
    if (e.key === "Escape") { e.preventDefault(); if (t.id === "skip-reason") hideSkip(); t.blur(); stage.focus(); }
    return;  // typing: Enter submits the form natively
  }
  const key = e.key.length === 1 ? e.key.toUpperCase() : e.key;
  const onControl = t.matches && t.matches('input[type="radio"], input[type="range"]');
  if (key.startsWith("Arrow")) {
    if (onControl) return;
    e.preventDefault();
    const step = e.shiftKey ? PAN * 4 : PAN;
    const d = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] }[key];
    viewer.panBy(...d);
    return;
  }
  if (t.matches && t.matches("button, a, summary") && (key === "Enter" || key === " ")) return;
  const actions = {
    Enter: submit, "+": () => viewer.zoomBy(1.25), "=": () => viewer.zoomBy(1.25), "-": () => viewer.zoomBy(0.8),
    _: () => viewer.zoomBy(0.8), W: () => viewer.fit(), Z: () => viewer.oneToOne(), "[": back, S: showSkip,
    "?": () => { const h = document.querySelector(".help"); h.open = !h.open; },
    Escape: () => { if (document.activeElement) document.activeElement.blur(); },
  };
  if (actions[key]) { e.preventDefault(); actions[key](); return; }
  const el = keyed.get(key);
  if (el) { e.preventDefault(); choose(el); }
});

// ---- start ------------------------------------------------------------------------------------------
fillForm(cur.label);
renderContext();
viewer.show(cur.src, `Image ${cur.queue.position} of ${cur.queue.total}`)
  .then(() => setTimeout(() => deep.preload(), 300));  // the deep-zoom viewer loads after the first paint
cache.set(cur.item, Promise.resolve({ data: { item: cur.item, label: cur.label, queue: cur.queue, status: cur.status }, src: cur.src }));
prefetch(cur.queue.next);
root.dataset.ready = "true";
