// The project's quality model, run in this browser with onnxruntime-web: nothing leaves the device.
// loadQualityCheck(url) fetches the model's settings (labeler/capture/services.py check_config),
// loads the runtime and the model, and returns {ready, reason, check(blob)}; check() decodes the
// photo, squashes it to the model's input (as the server does: whole photo, upright, RGB 0-255)
// and gives the verdict with the issues above their thresholds, in words.

const LOAD_TIMEOUT_MS = 60000;

function unavailable(reason) {
  return { ready: false, reason, check: null };
}

function withTimeout(promise, ms, message) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); }),
  ]);
}

function canRunWasm() {
  return typeof WebAssembly === "object" && typeof WebAssembly.instantiate === "function"
    && typeof createImageBitmap === "function";
}

// A JPEG decoded at a reduced scale (1/2, 1/4 or 1/8, the smallest whose sides are still >= size),
// as the server does with Pillow's draft(): the 8x8 blocks are not fully transformed, so a 12 MP
// photo decodes several times faster. WebCodecs' ImageDecoder does this where the browser has it
// (and applies the EXIF orientation); null elsewhere.
async function decodeScaled(blob, size) {
  if (typeof ImageDecoder !== "function" || blob.type !== "image/jpeg") return null;
  let decoder;
  try {
    if (!(await ImageDecoder.isTypeSupported(blob.type))) return null;
    decoder = new ImageDecoder({ data: blob.stream(), type: blob.type, desiredWidth: size, desiredHeight: size });
    const { image } = await decoder.decode();
    try {
      return await createImageBitmap(image, { resizeWidth: size, resizeHeight: size, resizeQuality: "high" });
    } finally {
      image.close();
    }
  } catch (err) {
    return null; // the full decode below says whether the file is an image at all
  } finally {
    if (decoder) decoder.close();
  }
}

async function pixels(blob, size) {
  // decode and resize; the browser applies the EXIF orientation (as the server does)
  const bitmap = (await decodeScaled(blob, size)) || await createImageBitmap(blob, {
    resizeWidth: size, resizeHeight: size, resizeQuality: "high", imageOrientation: "from-image",
  });
  let ctx;
  if (typeof OffscreenCanvas === "function") {
    ctx = new OffscreenCanvas(size, size).getContext("2d", { willReadFrequently: true });
  } else {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = size;
    ctx = canvas.getContext("2d", { willReadFrequently: true });
  }
  ctx.drawImage(bitmap, 0, 0, size, size);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, size, size).data;
  const data = new Float32Array(size * size * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4) {
    data[j++] = rgba[i];
    data[j++] = rgba[i + 1];
    data[j++] = rgba[i + 2];
  }
  return data;
}

function verdictOf(cfg, classProbs, explProbs) {
  let best = 0;
  for (let i = 1; i < classProbs.length; i++) if (classProbs[i] > classProbs[best]) best = i;
  const cls = cfg.classes[best];
  const issues = cfg.explanations
    .map((e, j) => ({ name: e.name, words: e.words, advice: e.advice, probability: explProbs[j], threshold: e.threshold }))
    .filter((e) => e.probability >= e.threshold)
    .sort((a, b) => b.probability - a.probability);
  return {
    probabilities: Object.fromEntries(cfg.classes.map((c, i) => [c.name, classProbs[i]])),
    explanations: Object.fromEntries(cfg.explanations.map((e, j) => [e.name, explProbs[j]])),
    className: cls.name,
    classText: cls.text,
    classAcceptable: cls.acceptable,
    classProbability: classProbs[best],
    issues,
    ok: cls.acceptable && issues.length === 0,
  };
}

export async function loadQualityCheck(settingsUrl) {
  let cfg;
  try {
    const resp = await fetch(settingsUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!resp.ok) return unavailable("The quality check could not be loaded from the server, so the photos are uploaded without it.");
    cfg = await resp.json();
  } catch (err) {
    return unavailable("The quality check could not be loaded (no connection?), so the photos are uploaded without it.");
  }
  if (!cfg.available) return unavailable(cfg.reason);
  if (!canRunWasm()) {
    return unavailable("This browser cannot run the quality check, so the photos are uploaded without it; the server checks them after upload when the project has its check turned on.");
  }
  try {
    const ort = await import(cfg.runtime_url);
    ort.env.wasm.wasmPaths = new URL(".", new URL(cfg.runtime_url, location.href)).href;
    // threads need cross-origin isolation (COOP/COEP); set before the first session
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    const session = await withTimeout(
      ort.InferenceSession.create(cfg.model_url, {
        executionProviders: ["wasm"],
        // idle threads sleep instead of spinning between runs: a phone's battery, and a busy
        // machine's other work (spinning doubled the wall time under load, measured)
        extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
      }),
      LOAD_TIMEOUT_MS, "the model took too long to load");
    const [, size] = cfg.input.shape;
    const fetches = [cfg.outputs.classes, cfg.outputs.explanations];
    const check = async (blob) => {
      const t0 = performance.now();
      let data;
      try {
        data = await pixels(blob, size);
      } catch (err) {
        return { error: "This file is not a photo the browser can open.", ms: performance.now() - t0 };
      }
      const t1 = performance.now();
      const feeds = { [cfg.input.name]: new ort.Tensor("float32", data, cfg.input.shape) };
      const out = await session.run(feeds, fetches);
      const verdict = verdictOf(cfg, out[fetches[0]].data, out[fetches[1]].data);
      const t2 = performance.now();
      return { ...verdict, ms: t2 - t0, decodeMs: t1 - t0, inferMs: t2 - t1 };
    };
    return { ready: true, reason: null, check, modelId: cfg.model_id, threads: ort.env.wasm.numThreads };
  } catch (err) {
    console.warn("quality check unavailable:", err);
    return unavailable("The quality check could not start in this browser, so the photos are uploaded without it; the server checks them after upload when the project has its check turned on.");
  }
}

// The verdict as a list item's children: "Looks good", or each issue in words with its advice.
export function renderVerdict(container, verdict) {
  container.replaceChildren();
  const head = document.createElement("p");
  head.className = "verdict-head";
  if (verdict.error) {
    head.textContent = verdict.error;
    container.dataset.verdict = "error";
    container.append(head);
    return;
  }
  container.dataset.verdict = verdict.ok ? "ok" : "warn";
  if (verdict.ok) {
    head.textContent = "Looks good.";
    container.append(head);
    return;
  }
  head.textContent = verdict.classAcceptable ? "Check this photo:" : `${verdict.classText}:`;
  container.append(head);
  const list = document.createElement("ul");
  list.className = "issues";
  for (const issue of verdict.issues) {
    const li = document.createElement("li");
    li.dataset.issue = issue.name;
    const strong = document.createElement("strong");
    strong.textContent = issue.words;
    li.append(strong);
    if (issue.advice) {
      const advice = document.createElement("span");
      advice.className = "advice";
      advice.textContent = issue.advice + ".";
      li.append(advice);
    }
    list.append(li);
  }
  if (!verdict.issues.length) {
    const li = document.createElement("li");
    li.dataset.issue = verdict.className;
    li.textContent = verdict.classAcceptable ? "" : "Take the photo again with the skin filling most of the picture.";
    list.append(li);
  }
  container.append(list);
}
