// Every signed-in page: the collapsing navigation and keyboard access to tables that scroll sideways.

// Below 760 px wide the main links fold behind a "Menu" button (the CSS hides them only once this
// script has marked the bar collapsible, so without scripts they simply wrap).
const bar = document.querySelector(".topbar");
const toggle = document.getElementById("nav-toggle");
if (bar && toggle) {
  bar.classList.add("collapsible");
  toggle.hidden = false;
  const setOpen = (open) => {
    toggle.setAttribute("aria-expanded", String(open));
    bar.classList.toggle("nav-open", open);
  };
  toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && bar.classList.contains("nav-open")) {
      setOpen(false);
      toggle.focus();
    }
  });
}

// A table too wide for the screen scrolls inside its box (app.css); a box that scrolls gets a tab stop
// so keyboard users can scroll it with the arrow keys (WCAG 2.1.1), and a name when it is a wrapper.
function tableName(table) {
  const caption = table.caption?.textContent.trim();
  const heading = table.closest("section, .card")?.querySelector("h2, h3")?.textContent.trim();
  return table.getAttribute("aria-label") || caption || heading || "Table";
}

function markScrollable(box) {
  const scrolls = box.scrollWidth > box.clientWidth + 1;
  if (scrolls === box.hasAttribute("data-scrolls")) return;
  if (scrolls) {
    box.dataset.scrolls = "";
    box.tabIndex = 0;
    if (box.tagName !== "TABLE") {
      box.setAttribute("role", "region");
      const table = box.querySelector("table");
      box.setAttribute("aria-label", `${table ? tableName(table) : "Content"} (scrolls sideways)`);
    }
  } else {
    delete box.dataset.scrolls;
    box.removeAttribute("tabindex");
    if (box.tagName !== "TABLE") {
      box.removeAttribute("role");
      box.removeAttribute("aria-label");
    }
  }
}

const boxes = document.querySelectorAll("main .table-scroll, main table");
const watch = new ResizeObserver((entries) => entries.forEach((e) => markScrollable(e.target)));
boxes.forEach((box) => { markScrollable(box); watch.observe(box); });
