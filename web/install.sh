#!/usr/bin/env bash
# ONNX Runtime Web from the npm registry, exactly as package-lock.json pins it, copied into vendor/ (ignored by git):
# the page loads nothing from a CDN. Its WebAssembly (15 MB) is stored in parts under 10 MiB, a Space's limit for a
# plain file; the page joins them (app.js, wasmBinary).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
rm -rf vendor
mkdir vendor
node - <<'JS'
const fs = require("fs");
const pkg = "node_modules/onnxruntime-web";
const dist = `${pkg}/dist`;
// The WebAssembly-only build and the glue it imports from env.wasm.wasmPaths.
for (const name of ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs"]) fs.copyFileSync(`${dist}/${name}`, `vendor/${name}`);
const wasm = fs.readFileSync(`${dist}/ort-wasm-simd-threaded.wasm`);
const size = 8 * 1024 * 1024;
const parts = [];
for (let start = 0; start < wasm.length; start += size) {
  const name = `ort-wasm-simd-threaded.wasm.part${String(parts.length).padStart(2, "0")}`;
  fs.writeFileSync(`vendor/${name}`, wasm.subarray(start, start + size));
  parts.push(name);
}
const version = JSON.parse(fs.readFileSync(`${pkg}/package.json`)).version;
fs.writeFileSync("vendor/wasm.json", JSON.stringify({ package: "onnxruntime-web", version, parts }) + "\n");
fs.writeFileSync("vendor/NOTICE.txt",
  `onnxruntime-web ${version}, MIT licence (c) Microsoft Corporation: https://github.com/microsoft/onnxruntime\n`);
console.log(`vendor/: onnxruntime-web ${version}, ${parts.length} parts of WebAssembly`);
JS
