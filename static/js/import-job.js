// Follows a large upload's import on its page: polls the job's JSON and shows the progress; once the
// job has finished, reloads the page, which then lists the per-file result.
const POLL_MS = 1500;
const box = document.getElementById("import-job");

function show(job) {
  const state = document.getElementById("job-state");
  const bar = document.getElementById("job-progress");
  bar.max = job.total || 1;
  bar.value = job.done;
  bar.textContent = `${job.done}/${job.total}`;
  if (job.status === "queued") state.textContent = "Waiting for a worker to start the import…";
  else if (job.status === "running") {
    state.textContent = `Importing: ${job.done} of ${job.total || "?"} files looked at.`;
  }
}

async function poll() {
  let job;
  try {
    const resp = await fetch(box.dataset.pollUrl, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (!resp.ok) return false;
    job = await resp.json();
  } catch {
    return false; // a network hiccup: the next poll tries again
  }
  show(job);
  return job.status === "succeeded" || job.status === "failed";
}

if (box && ["queued", "running"].includes(box.dataset.status)) {
  const timer = setInterval(async () => {
    if (await poll()) {
      clearInterval(timer);
      window.location.reload();
    }
  }, POLL_MS);
}
