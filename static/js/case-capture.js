// Capture page: up to N photos of one case, each checked on this device by the project's quality
// model (quality-check.js), retaken or removed as the user sees fit, then uploaded as one case.
import { loadQualityCheck, renderVerdict } from "./quality-check.js";

const root = document.getElementById("capture");
const maxPhotos = Number(root.dataset.maxPhotos);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const status = document.getElementById("check-status");
const form = document.getElementById("case-form");
const input = document.getElementById("photo-input");
const retakeInput = document.getElementById("retake-input");
const list = document.getElementById("photos");
const count = document.getElementById("photo-count");
const acceptRow = document.getElementById("accept-row");
const accept = document.getElementById("accept-warnings");
const uploadButton = document.getElementById("upload");
const result = document.getElementById("result");
const camera = { box: document.getElementById("camera"), video: document.getElementById("camera-video"), stream: null };

const photos = []; // {blob, name, url, verdict, checking, li}
let checker = { ready: false, reason: null, check: null };
let retakeIndex = null;
let taken = 0;
let busy = false;

const loadStart = performance.now();
const ready = loadQualityCheck(root.dataset.checkUrl).then((c) => {
  checker = c;
  status.dataset.loadMs = (performance.now() - loadStart).toFixed(0);
  if (c.ready) status.dataset.threads = String(c.threads);
  status.textContent = c.ready
    ? "The quality check runs on this device: each photo is checked before anything is sent."
    : c.reason;
  status.dataset.state = c.ready ? "ready" : "unavailable";
  for (const p of photos) if (!p.verdict) runCheck(p);
  refresh();
});

function refresh() {
  const n = photos.length;
  count.textContent = n
    ? `${n} of ${maxPhotos} photos.${n >= maxPhotos ? " Remove or retake one to change it." : ""}`
    : `No photos yet (up to ${maxPhotos}).`;
  input.disabled = n >= maxPhotos || busy;
  const checking = photos.some((p) => p.checking);
  const warned = photos.some((p) => p.verdict && !p.verdict.ok);
  acceptRow.hidden = !warned;
  if (!warned) accept.checked = false;
  uploadButton.disabled = busy || !n || checking || (warned && !accept.checked);
  uploadButton.textContent = n > 1 ? `Upload case (${n} photos)` : "Upload case";
}

async function runCheck(photo) {
  const box = photo.li.querySelector(".verdict");
  if (!checker.ready) {
    box.textContent = checker.reason ? "Not checked on this device." : "Waiting for the quality check…";
    return;
  }
  photo.checking = true;
  box.textContent = "Checking…";
  refresh();
  let verdict;
  try {
    verdict = await checker.check(photo.blob);
  } catch (err) {
    verdict = { error: "The check failed for this photo; you can still upload it." };
  }
  if (!photos.includes(photo)) return; // removed meanwhile
  photo.checking = false;
  photo.verdict = verdict.error ? null : verdict;
  renderVerdict(box, verdict);
  if (verdict.ms !== undefined) photo.li.dataset.checkMs = verdict.ms.toFixed(1);
  if (verdict.inferMs !== undefined) {  // read by bench/ml.py
    photo.li.dataset.decodeMs = verdict.decodeMs.toFixed(1);
    photo.li.dataset.inferMs = verdict.inferMs.toFixed(1);
  }
  refresh();
}

function photoItem(photo) {
  const li = document.createElement("li");
  li.className = "photo";
  const img = document.createElement("img");
  img.src = photo.url;
  img.alt = `Photo of the case (${photo.name})`;
  const verdict = document.createElement("div");
  verdict.className = "verdict";
  const row = document.createElement("div");
  row.className = "row";
  const retake = document.createElement("button");
  retake.type = "button";
  retake.className = "retake";
  retake.textContent = "Retake";
  retake.addEventListener("click", () => {
    retakeIndex = photos.indexOf(photo);
    retakeInput.value = "";
    retakeInput.click();
  });
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.textContent = "Remove";
  remove.addEventListener("click", () => replace(photo, null));
  row.append(retake, remove);
  li.append(img, verdict, row);
  return li;
}

function newPhoto(blob, name) {
  const photo = { blob, name, url: URL.createObjectURL(blob), verdict: null, checking: false };
  photo.li = photoItem(photo);
  return photo;
}

function add(blob, name) {
  if (photos.length >= maxPhotos) return;
  const photo = newPhoto(blob, name);
  photos.push(photo);
  list.append(photo.li);
  result.textContent = "";
  runCheck(photo);
  refresh();
}

function replace(old, blob, name) {
  const i = photos.indexOf(old);
  if (i < 0) return;
  URL.revokeObjectURL(old.url);
  if (blob) {
    const photo = newPhoto(blob, name);
    photos[i] = photo;
    old.li.replaceWith(photo.li);
    runCheck(photo);
    photo.li.querySelector(".retake").focus();
  } else {
    photos.splice(i, 1);
    old.li.remove();
    input.focus();
  }
  refresh();
}

input.addEventListener("change", () => {
  for (const file of input.files) add(file, file.name);
  input.value = "";
});

retakeInput.addEventListener("change", () => {
  const file = retakeInput.files[0];
  if (file && retakeIndex !== null && photos[retakeIndex]) replace(photos[retakeIndex], file, file.name);
  retakeIndex = null;
});

accept.addEventListener("change", refresh);

// getUserMedia where the browser has it (a secure context): a preview and a full-resolution still
const startButton = document.getElementById("camera-start");
if (navigator.mediaDevices && typeof navigator.mediaDevices.getUserMedia === "function") {
  startButton.hidden = false;
  startButton.addEventListener("click", async () => {
    try {
      camera.stream = await navigator.mediaDevices.getUserMedia({
        audio: false,
        video: { facingMode: { ideal: "environment" }, width: { ideal: 4096 }, height: { ideal: 3072 } },
      });
    } catch (err) {
      status.textContent = "The camera could not be opened; use “Add a photo” instead.";
      return;
    }
    camera.video.srcObject = camera.stream;
    camera.box.hidden = false;
    await camera.video.play();
    document.getElementById("camera-shoot").focus();
  });
  document.getElementById("camera-shoot").addEventListener("click", async () => {
    const v = camera.video;
    if (!v.videoWidth) return;
    const canvas = document.createElement("canvas");
    canvas.width = v.videoWidth;
    canvas.height = v.videoHeight;
    canvas.getContext("2d").drawImage(v, 0, 0);
    const blob = await new Promise((ok) => canvas.toBlob(ok, "image/jpeg", 0.92));
    taken += 1;
    if (blob) add(blob, `camera-${taken}.jpg`);
    if (photos.length >= maxPhotos) stopCamera();
  });
  document.getElementById("camera-stop").addEventListener("click", stopCamera);
}

function stopCamera() {
  if (camera.stream) for (const track of camera.stream.getTracks()) track.stop();
  camera.stream = null;
  camera.video.srcObject = null;
  camera.box.hidden = true;
  startButton.focus();
}

function showResult(body) {
  result.replaceChildren();
  const p = document.createElement("p");
  p.className = "notice";
  p.id = "result-line";
  p.textContent = `Case ${body.case_id}: ${body.summary}.`;
  result.append(p);
  for (const r of body.rejected || []) {
    const e = document.createElement("p");
    e.className = "error";
    e.textContent = `${r.filename}: ${r.error}`;
    result.append(e);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  await ready;
  if (uploadButton.disabled) return;
  const data = new FormData();
  data.append("case_id", document.getElementById("case-id").value);
  data.append("body_site", document.getElementById("body-site").value);
  for (const p of photos) data.append("photos", p.blob, p.name);
  busy = true;
  refresh();
  uploadButton.textContent = "Uploading…";
  try {
    const resp = await fetch(root.dataset.uploadUrl, {
      method: "POST",
      body: data,
      headers: { Accept: "application/json", "X-CSRFToken": csrf },
      credentials: "same-origin",
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      result.replaceChildren();
      const e = document.createElement("p");
      e.className = "error";
      e.textContent = (body.error && body.error.message) || `The upload failed (${resp.status}). Nothing was saved; try again.`;
      result.append(e);
      return;
    }
    showResult(body);
    for (const p of photos) URL.revokeObjectURL(p.url);
    photos.length = 0;
    list.replaceChildren();
    form.reset();
  } catch (err) {
    result.textContent = "The upload did not reach the server (no connection?). The photos are still here: try again.";
  } finally {
    busy = false;
    refresh();
  }
});

refresh();
