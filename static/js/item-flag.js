// The labeling page's flag box: mark the shown image "unsure" and leave a note for the project's
// leads (U toggles "unsure" and saves it); the lead's answer appears on that image. Only this rater
// and the leads ever read a flag.
const $ = (id) => document.getElementById(id);
const root = $("labeling");
const S = JSON.parse(root.dataset.state);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const box = $("flag-box");
const form = $("flag-form");
const unsure = $("flag-unsure");
const comment = $("flag-comment");
const status = $("flag-status");
const urlFor = (id) => S.urls.flag.replace("__ID__", encodeURIComponent(id));

let item = S.item;
const known = new Map();  // public id -> flag, as last saved or read on this page

function render(flag) {
  unsure.checked = Boolean(flag && flag.unsure);
  comment.value = (flag && flag.comment) || "";
  status.textContent = "";
  const answer = flag && flag.answer;
  $("flag-answer").hidden = !answer;
  $("flag-answer-text").textContent = answer || "";
  box.open = Boolean(flag && (flag.unsure || flag.comment || flag.answer));
}

async function request(method, body) {
  const resp = await fetch(urlFor(item), {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json", "X-CSRFToken": csrf } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  return { status: resp.status, data };
}

async function save() {
  const id = item;
  status.textContent = "Sending…";
  try {
    const res = await request("PUT", { unsure: unsure.checked, comment: comment.value || null });
    if (id !== item) return;
    if (res.status !== 200) {
      status.textContent = res.data?.error?.message || `Could not send (HTTP ${res.status}).`;
      return;
    }
    known.set(id, res.data);
    const sent = res.data.unsure || res.data.comment;
    status.textContent = sent ? "Sent to the project's leads." : "Flag removed.";
    // back to the answer keys (a focused button or box would take the next Enter or letter)
    if (form.contains(document.activeElement)) document.activeElement.blur();
  } catch {
    status.textContent = "Could not reach the server; the flag was not sent.";
  }
}

form.addEventListener("submit", (e) => { e.preventDefault(); save(); });
unsure.addEventListener("change", save);

root.addEventListener("labeling:item", async (e) => {
  item = e.detail.item;
  const flag = known.get(item) || e.detail.flag;
  if (flag) { render(flag); return; }
  render(null);
  const id = item;
  const res = await request("GET");
  if (res.status === 200 && id === item) { known.set(id, res.data); render(res.data); }
});

// U: toggle "unsure" on the shown image and send it (not while typing)
window.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
  const t = e.target;
  if (t && t.matches && t.matches('input[type="text"], input:not([type]), textarea, select')) return;
  if (document.querySelector("dialog[open]")) return;
  if (e.key === "u" || e.key === "U") {
    e.preventDefault();
    e.stopPropagation();
    unsure.checked = !unsure.checked;
    box.open = true;
    save();
  }
}, true);

known.set(item, S.flag);
render(S.flag);
