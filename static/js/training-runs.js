// Follows training runs in progress on the models page: polls each run's JSON status and updates
// its row; reloads the page once a run finishes (to show the model link and the verdict).
const POLL_MS = 2000;

async function poll(row) {
  const url = row.dataset.runUrl;
  let run;
  try {
    const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!resp.ok) return false;
    run = await resp.json();
  } catch {
    return false;
  }
  row.querySelector(".status").textContent = run.status;
  const bar = row.querySelector("progress");
  bar.max = run.total || 1;
  bar.value = run.done;
  bar.textContent = `${run.done}/${run.total}`;
  row.querySelector(".stage").textContent = run.stage ? `${run.stage} ${run.done}/${run.total}` : "";
  return ["succeeded", "failed", "cancelled"].includes(run.status);
}

const rows = [...document.querySelectorAll("tr.run[data-run-url]")];
if (rows.length) {
  const timer = setInterval(async () => {
    const finished = await Promise.all(rows.map(poll));
    if (finished.some(Boolean)) {
      clearInterval(timer);
      window.location.reload();
    }
  }, POLL_MS);
}
