// Lead's upload page: the selected photos are checked on this device by the project's quality
// model before anything is sent; warnings are listed per file and the lead decides (the Upload
// button always works). The model is loaded on the first selection, not with the page.
import { loadQualityCheck, renderVerdict } from "./quality-check.js";

const MAX_CHECKED = 100;
const box = document.getElementById("upload-check");
const input = document.getElementById("files");
const status = document.getElementById("check-status");
const list = document.getElementById("file-checks");
let checker = null;
let round = 0;

function checkable(file) {
  return /^image\/(jpeg|png|webp|gif|bmp|avif)$/.test(file.type);
}

input.addEventListener("change", async () => {
  const mine = ++round;
  list.replaceChildren();
  const files = Array.from(input.files);
  if (!files.length) { status.textContent = ""; return; }
  status.textContent = "Loading the quality check…";
  checker = checker || await loadQualityCheck(box.dataset.checkUrl);
  if (mine !== round) return;
  if (!checker.ready) { status.textContent = checker.reason; status.dataset.state = "unavailable"; return; }
  status.dataset.state = "ready";
  status.textContent = "Checking the selected photos on this device (nothing is sent yet)…";
  let warned = 0, checked = 0;
  for (const [i, file] of files.entries()) {
    const li = document.createElement("li");
    li.dataset.file = file.name;
    const name = document.createElement("code");
    name.textContent = file.name;
    const verdict = document.createElement("div");
    verdict.className = "verdict";
    li.append(name, verdict);
    list.append(li);
    if (i >= MAX_CHECKED) { verdict.textContent = `Not checked (only the first ${MAX_CHECKED} files are checked here).`; continue; }
    if (!checkable(file)) { verdict.textContent = "Not checked here (the server checks it after upload)."; continue; }
    const v = await checker.check(file);
    if (mine !== round) return;
    renderVerdict(verdict, v);
    checked += 1;
    if (!v.error && !v.ok) warned += 1;
  }
  status.textContent = warned
    ? `${warned} of ${checked} checked photos have warnings: look at them before you upload (you may upload them anyway).`
    : `All ${checked} checked photos look good.`;
});
