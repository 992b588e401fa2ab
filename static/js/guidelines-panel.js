// The labeling page's guidelines: the dialog on G (or its button), and each answer's definition and
// reference images beside its button while the pointer is on it (or the answer has keyboard focus).
const dialog = document.getElementById("guidelines-dialog");
const openButton = document.getElementById("guidelines-open");
const closeButton = document.getElementById("guidelines-close");

let before = null;  // where focus was when the guidelines opened: it goes back there on close
function toggle() {
  if (dialog.open) { dialog.close(); return; }
  before = document.activeElement;
  dialog.showModal();
}
openButton.addEventListener("click", toggle);
closeButton.addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => {
  // back to the answer keys: a focused button would take the next Enter for itself
  if (before && before !== document.body && before !== openButton && before.isConnected) before.focus();
  else if (document.activeElement) document.activeElement.blur();
  before = null;
});

const typing = (t) => t && t.matches && t.matches('input[type="text"], input:not([type]), textarea, select');

// Capture phase on window: runs before the page's shortcut handler, which must not act while the
// guidelines are open (a key pressed while reading must not answer the image behind them).
window.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
  if (e.key === "g" || e.key === "G") {
    e.preventDefault();
    e.stopPropagation();
    toggle();
    return;
  }
  if (dialog.open) e.stopPropagation();  // Esc, Tab and scrolling keep their native meaning
}, true);

// ---- hover cards ------------------------------------------------------------------------------------
const GAP = 10;
let shown = null;

function place(card, anchor) {
  card.hidden = false;
  const a = anchor.getBoundingClientRect();
  const w = card.offsetWidth;
  const h = card.offsetHeight;
  const vw = document.documentElement.clientWidth;
  const vh = document.documentElement.clientHeight;
  let left = a.left - w - GAP;  // beside the button, over the image
  let top = a.top;
  if (left < GAP) {  // no room on the left (phone, tablet portrait): below the button instead
    left = Math.max(GAP, Math.min(a.left, vw - w - GAP));
    top = a.bottom + 4;
    if (top + h > vh - GAP) top = Math.max(GAP, a.top - h - 4);
  }
  top = Math.max(GAP, Math.min(top, vh - h - GAP));
  card.style.left = `${left}px`;
  card.style.top = `${top}px`;
}

function show(card, anchor) {
  if (shown && shown !== card) shown.hidden = true;
  shown = card;
  place(card, anchor);
}
function hide(card) {
  card.hidden = true;
  if (shown === card) shown = null;
}

document.querySelectorAll(".ref-card[data-card-for]").forEach((card) => {
  const anchor = card.previousElementSibling;  // the answer's label
  if (!anchor || !anchor.matches("label")) return;
  anchor.addEventListener("mouseenter", () => show(card, anchor));
  anchor.addEventListener("mouseleave", () => hide(card));
  anchor.addEventListener("focusin", () => show(card, anchor));
  anchor.addEventListener("focusout", () => hide(card));
});
window.addEventListener("scroll", () => { if (shown) hide(shown); }, true);
