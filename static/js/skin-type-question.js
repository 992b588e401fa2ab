// The skin-type second question of the labeling page (templates/labeling/_skin_type_question.html):
// Shift with a digit picks Fitzpatrick I-VI (Shift+1..6) or "cannot assess" (Shift+0); T moves the
// focus into the radio group (for keyboards whose digits need Shift themselves), where the arrow
// keys move between answers. Shift+Backspace (or Delete/Backspace inside the group, or the "Clear skin
// type" button) takes a chosen answer back: the question is optional. Imported by labeling.js, so its
// key listener runs first.
const box = document.getElementById("skin-type-question");
const radios = box ? [...box.querySelectorAll('input[name="skin_type"]')] : [];
const clearButton = box ? box.querySelector("#skin-type-clear") : null;
const syncClear = () => { if (clearButton) clearButton.hidden = !radios.some((r) => r.checked); };

function clear() {
  const was = radios.find((r) => r.checked);
  if (!was) return;
  radios.forEach((r) => { r.checked = false; });
  syncClear();
  was.dispatchEvent(new Event("change", { bubbles: true }));
  if (box.contains(document.activeElement)) radios[0].focus();
}

export const skinQuestion = {
  on: Boolean(box),
  // the chosen answer: 1-6, 0 for cannot assess, null for none
  value() {
    const r = radios.find((x) => x.checked);
    return r ? Number(r.value) : null;
  },
  fill(label) {
    const code = label && label.skin_type !== undefined ? label.skin_type : null;
    radios.forEach((r) => { r.checked = code !== null && Number(r.value) === code; });
    syncClear();
  },
  // "Type IV" / "Cannot assess", as the radio's own words
  name(code) {
    const r = radios.find((x) => Number(x.value) === code);
    return r ? r.closest("label").querySelector("span").textContent.trim() : "";
  },
};

if (box) {
  box.addEventListener("change", syncClear);
  if (clearButton) clearButton.addEventListener("click", clear);
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    const t = e.target;
    if (t.matches && t.matches('input[type="text"], input:not([type]), textarea, select')) return;
    const inGroup = radios.includes(t);
    if ((e.key === "Backspace" && (e.shiftKey || inGroup)) || (e.key === "Delete" && inGroup)) {
      e.preventDefault();
      clear();
      return;
    }
    const digit = /^Digit([0-6])$/.exec(e.code || "");
    // Shift+digit, unless the layout's Shift+digit is the digit itself (AZERTY): that stays the
    // main protocol's key, and T reaches this question instead
    if (e.shiftKey && digit && e.key !== digit[1]) {
      const r = radios.find((x) => x.dataset.skinKey === digit[1]);
      if (r) {
        e.preventDefault();
        r.checked = true;
        r.dispatchEvent(new Event("change", { bubbles: true }));
      }
      return;
    }
    if (!e.shiftKey && (e.key === "t" || e.key === "T")) {
      e.preventDefault();
      (radios.find((x) => x.checked) || radios[0]).focus();
    }
  });
}
