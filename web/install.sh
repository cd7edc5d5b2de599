#!/usr/bin/env bash
# ONNX Runtime Web from the npm registry, exactly as package-lock.json pins it, copied into vendor/ (ignored by git):
# the page loads nothing from a CDN. Its WebAssembly (15 MB) is stored in parts under 10 MiB, a Space's limit for a
# plain file; the page joins them (app.js, wasmBinary).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
dist=node_modules/onnxruntime-web/dist
rm -rf vendor
mkdir vendor
# The WebAssembly-only build and the glue it imports from env.wasm.wasmPaths.
cp "$dist/ort.wasm.min.mjs" "$dist/ort-wasm-simd-threaded.mjs" vendor/
split -b 8M -d -a 2 "$dist/ort-wasm-simd-threaded.wasm" vendor/ort-wasm-simd-threaded.wasm.part
parts=$(cd vendor && ls ort-wasm-simd-threaded.wasm.part* | sed 's/.*/"&"/' | paste -sd, -)
version=$(node -p "require('./node_modules/onnxruntime-web/package.json').version")
echo "{\"package\": \"onnxruntime-web\", \"version\": \"$version\", \"parts\": [$parts]}" > vendor/wasm.json
printf 'onnxruntime-web %s, MIT licence (c) Microsoft Corporation: https://github.com/microsoft/onnxruntime\n' \
  "$version" > vendor/NOTICE.txt
echo "vendor/: onnxruntime-web $version, $(du -sh vendor | cut -f1)"
