// The page: colorization.pipeline's steps, each an ONNX graph exported by release/export_onnx.py, run with
// ONNX Runtime Web (WebAssembly) in this tab. No colour arithmetic here: only shapes, runs of pixels and the UI.
import * as ort from "./vendor/ort.wasm.min.mjs";

const RUN = 1 << 18; // pixels per call of the per-pixel graphs: bounded memory on a big photo, as the pipeline's runs
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

let manifest, sessions;
let photo = null; // {name, width, height, rgba (Uint8Array), l (Float32Array)}
let abSmall = new Map(); // render size -> {data, h, w}: the network's output, reused when only the intensity moves
let job = Promise.resolve();

function setState(state, message) {
  document.body.dataset.state = state;
  $("status").textContent = message;
}

// Python's round(): half to even, so the render shape is the pipeline's to the pixel.
function pyRound(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// colorization.pipeline.render_shape: short side renderSize, long side at most maxAspect times that.
export function renderShape(height, width, renderSize, maxAspect = manifest.max_aspect) {
  const scale = Math.min(renderSize / Math.min(height, width), (maxAspect * renderSize) / Math.max(height, width));
  return [Math.max(1, pyRound(height * scale)), Math.max(1, pyRound(width * scale))];
}

async function wasmBinary() {
  // The runtime's WebAssembly is stored in parts under 10 MiB (a Space's limit for a plain file), joined here.
  const parts = (await (await fetch("vendor/wasm.json")).json()).parts;
  const buffers = await Promise.all(parts.map(async (p) => new Uint8Array(await (await fetch(`vendor/${p}`)).arrayBuffer())));
  const joined = new Uint8Array(buffers.reduce((n, b) => n + b.length, 0));
  let offset = 0;
  for (const b of buffers) { joined.set(b, offset); offset += b.length; }
  return joined;
}

async function load() {
  manifest = await (await fetch("models/manifest.json")).json();
  const threads = Number(params.get("threads"));
  if (threads > 0) ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = new URL("vendor/", location.href).href;
  ort.env.wasm.wasmBinary = await wasmBinary();
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  sessions = {};
  for (const [name, file] of Object.entries(manifest.graphs)) {
    sessions[name] = await ort.InferenceSession.create(`models/${file}`, options);
  }
  const size = $("size");
  size.value = manifest.render_size;
  $("size-value").textContent = size.value;
  $("model").textContent = `Model: ${manifest.title}, ONNX Runtime Web ${ort.env.versions?.web ?? ""}.`;
}

// L of every pixel, in runs: (N, 4) uint8 -> (N,) float32.
async function lightness(rgba, count) {
  const l = new Float32Array(count);
  for (let start = 0; start < count; start += RUN) {
    const n = Math.min(RUN, count - start);
    const pixels = new ort.Tensor("uint8", rgba.subarray(start * 4, (start + n) * 4), [n, 4]);
    l.set((await sessions.lightness.run({ rgba: pixels })).l.data, start);
  }
  return l;
}

// A graph whose output size is the shape of two vectors (rows, cols): torch exports no shape from a value.
function sizeFeeds(h, w) {
  return { rows: new ort.Tensor("float32", new Float32Array(h), [h]), cols: new ort.Tensor("float32", new Float32Array(w), [w]) };
}

// The pipeline's Colorizer.l_small: INTER_AREA when shrinking, else bilinear.
async function lSmall(size) {
  const { height, width, l } = photo;
  const [h, w] = renderShape(height, width, size);
  const x = new ort.Tensor("float32", l, [1, height, width]);
  const session = h < height ? sessions.area : sessions.linear;
  const out = (await session.run({ x, ...sizeFeeds(h, w) })).y;
  return { data: out.data, h, w };
}

async function network(size) {
  if (!abSmall.has(size)) {
    const small = await lSmall(size);
    const l = new ort.Tensor("float32", small.data, [1, 1, small.h, small.w]);
    const up = (n) => Math.ceil(n / manifest.stride) * manifest.stride; // the network's sides, padded by the graph
    const ab = (await sessions.network.run({ l, ...sizeFeeds(up(small.h), up(small.w)) })).ab;
    abSmall.set(size, { data: ab.data, h: small.h, w: small.w });
  }
  return abSmall.get(size);
}

// Lab (L full, a, b full) -> RGBA into a canvas, in runs; a, b null is the gray baseline (a = b = 0).
async function display(canvas, a, b) {
  const { width, height, rgba, l } = photo;
  const count = width * height;
  const image = new ImageData(width, height);
  const zeros = a ? null : new Float32Array(Math.min(RUN, count));
  for (let start = 0; start < count; start += RUN) {
    const n = Math.min(RUN, count - start);
    const part = (x) => new ort.Tensor("float32", x ? x.subarray(start, start + n) : zeros.subarray(0, n), [n]);
    const feeds = { l: part(l), a: part(a), b: part(b), rgba: new ort.Tensor("uint8", rgba.subarray(start * 4, (start + n) * 4), [n, 4]) };
    image.data.set((await sessions.display.run(feeds)).rgba_out.data, start * 4);
  }
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(image, 0, 0);
}

async function colorize() {
  const started = performance.now();
  const size = Number($("size").value);
  const intensity = Number($("intensity").value);
  const small = await network(size);
  document.body.dataset.networkSeconds = ((performance.now() - started) / 1000).toFixed(3);
  let ab = small.data;
  if (intensity !== 1) ab = ab.map((v) => v * intensity); // scaled before upsampling, as the pipeline
  const x = new ort.Tensor("float32", ab, [2, small.h, small.w]);
  const full = (await sessions.linear.run({ x, ...sizeFeeds(photo.height, photo.width) })).y.data; // (2, H, W)
  const count = photo.width * photo.height;
  await display($("result"), full.subarray(0, count), full.subarray(count));
  return (performance.now() - started) / 1000;
}

async function decode(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image", premultiplyAlpha: "none" });
  } catch {
    throw new Error(`${file.name}: not an image file (or a format this browser cannot read)`);
  }
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { colorSpace: "srgb", willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const data = context.getImageData(0, 0, width, height, { colorSpace: "srgb" }).data;
  return { name: file.name, width, height, rgba: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

function showDownload() {
  $("result").toBlob((blob) => {
    const link = $("download");
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.download = `${photo.name.replace(/\.[^.]*$/, "")}_colorized.png`;
    link.hidden = false;
  }, "image/png");
}

// One job at a time: a second photo or a moved control waits for the one running.
function enqueue(work) {
  job = job.then(work).catch((error) => {
    $("compare").hidden = $("download").hidden = true; // no earlier photo's result beside the error
    setState("error", error.message || String(error));
  });
  return job;
}

function openPhoto(file) {
  return enqueue(async () => {
    setState("working", `Colorizing ${file.name}…`);
    const steps = {}; // seconds per step, in document.body.dataset.steps for anyone measuring the page
    let last = performance.now();
    const lap = (name) => { const now = performance.now(); steps[name] = (now - last) / 1000; last = now; };
    photo = await decode(file);
    lap("decode");
    photo.l = await lightness(photo.rgba, photo.width * photo.height);
    lap("lightness");
    abSmall = new Map();
    await display($("gray"), null, null);
    lap("gray");
    await colorize();
    lap("colorize");
    const seconds = Object.values(steps).reduce((a, b) => a + b, 0);
    $("compare").hidden = false;
    showDownload();
    document.body.dataset.seconds = seconds.toFixed(3);
    document.body.dataset.steps = JSON.stringify(steps);
    setState("done", `${photo.name}: ${photo.width} x ${photo.height}, colorized in ${seconds.toFixed(2)} s.`);
  });
}

function recolorize() {
  if (!photo) return;
  enqueue(async () => {
    setState("working", "Colorizing…");
    const seconds = await colorize();
    showDownload();
    setState("done", `${photo.name}: ${photo.width} x ${photo.height}, colorized in ${seconds.toFixed(2)} s.`);
  });
}

function wire() {
  $("file").addEventListener("change", (event) => {
    if (event.target.files[0]) openPhoto(event.target.files[0]);
    event.target.value = ""; // picking the same file again opens it again
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files[0]) openPhoto(event.dataTransfer.files[0]);
  });
  $("split").addEventListener("input", (event) => { $("result").style.clipPath = `inset(0 0 0 ${event.target.value}%)`; });
  $("intensity").addEventListener("input", (event) => { $("intensity-value").textContent = Number(event.target.value).toFixed(2); });
  $("intensity").addEventListener("change", recolorize);
  $("size").addEventListener("input", (event) => { $("size-value").textContent = event.target.value; });
  $("size").addEventListener("change", recolorize);
}

wire();
window.colorization = { renderShape }; // for tests and for anyone embedding the page
// A photo picked while the model loads waits for it (the first job).
job = load().then(() => setState("ready", "Ready: pick a photo."),
                  (error) => setState("error", `The model did not load: ${error.message}`));
