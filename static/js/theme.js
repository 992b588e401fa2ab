// The labeling page's theme: dark (a neutral dark surround, the reading-room convention) or light.
// It follows the system setting (prefers-color-scheme) until the rater presses the toggle; a choice
// that differs from the system is kept in this browser, one equal to it goes back to following it.
// A classic script loaded in <head>, so a kept choice applies before the first paint.
(function () {
  const KEY = "labeler-theme";
  const root = document.documentElement;
  const media = window.matchMedia("(prefers-color-scheme: dark)");
  let saved = null;
  try { saved = localStorage.getItem(KEY); } catch { /* storage off: follow the system */ }
  if (saved === "dark" || saved === "light") root.dataset.theme = saved;
  const system = () => (media.matches ? "dark" : "light");
  const effective = () => root.dataset.theme || system();

  function bind() {
    const toggle = document.getElementById("theme-toggle");
    if (!toggle) return;
    const render = () => {
      toggle.setAttribute("aria-pressed", String(effective() === "dark"));
      toggle.title = root.dataset.theme ? "Your choice (kept in this browser)" : "Following the system setting";
    };
    render();
    media.addEventListener("change", render);
    toggle.addEventListener("click", () => {
      const next = effective() === "dark" ? "light" : "dark";
      try {
        if (next === system()) localStorage.removeItem(KEY); else localStorage.setItem(KEY, next);
      } catch { /* storage off: the choice lasts for this page */ }
      if (next === system()) delete root.dataset.theme; else root.dataset.theme = next;
      render();
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", bind);
  else bind();
})();
