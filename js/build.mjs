// Builds the browser side of the widgets into devinterp_viz/widgets/static/:
//   index.js  the shared runtime: every view, plotly.js (its core and heatmap: src/plot.js) and the
//             CSS, as one ESM,
//             packed: gzipped and base64-encoded inside src/unpack.js, which decompresses and imports
//             it in the browser. The hidden DvzRuntime widget carries it, once per kernel and once
//             per saved notebook (and a saved page inlines it once).
//   view.js   the ~1 KB module each widget carries as its _esm: it gets the runtime from the
//             DvzRuntime widget it references and renders with it.
// Usage: npm run build (minified, packed); npm run watch (rebuild on change, unminified, unpacked).
import * as esbuild from "esbuild";
import { mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, "..", "devinterp_viz", "widgets", "static");
// what travels: the packed runtime (a saved notebook <= 1 MB and a saved page <= 1.2 MB need it well
// under both), the per-widget module; and the runtime as the browser parses it once unpacked
const BUDGETS = { "index.js": 800 * 1024, "view.js": 4 * 1024 };
const UNPACKED_BUDGET = 2 * 1024 * 1024;

// plotly.js's registry requires maplibre-gl's stylesheet for map traces, which the views never draw:
// an empty module instead keeps its 83 KB out of the runtime
const withoutMapStyles = {
  name: "without-map-styles",
  setup(build) {
    build.onResolve({ filter: /^maplibre-gl\/dist\/maplibre-gl\.css$/ }, (args) => ({ path: args.path, namespace: "unused" }));
    build.onLoad({ filter: /.*/, namespace: "unused" }, () => ({ contents: "", loader: "text" }));
  },
};

const options = {
  entryPoints: { index: path.join(here, "src", "index.js"), view: path.join(here, "src", "view.js") },
  bundle: true,
  format: "esm",
  minify: true,
  target: ["es2020"],
  outdir,
  loader: { ".css": "text" }, // the runtime injects its stylesheet itself: no per-widget _css
  legalComments: "none",
  logLevel: "info",
  plugins: [withoutMapStyles],
  define: { global: "globalThis" }, // plotly.js's sources (and their dependencies) are written for browserify
};
const runtimeBanner = "/*! devinterp_viz widget runtime. Includes plotly.js (MIT License, Copyright 2012-2026 Plotly, Inc.). */";

/** Build the runtime in memory, gzip it and write it into the unpacking module as index.js. */
async function buildPackedRuntime() {
  const quiet = { write: false, logLevel: "warning" };
  const built = await esbuild.build({ ...options, ...quiet, entryPoints: { index: options.entryPoints.index }, banner: { js: runtimeBanner } });
  const runtime = built.outputFiles[0].contents;
  const loader = await esbuild.build({ ...options, ...quiet, bundle: false, entryPoints: [path.join(here, "src", "unpack.js")], banner: { js: runtimeBanner } });
  const placeholder = "__DVZ_PACKED_RUNTIME__";
  const source = loader.outputFiles[0].text;
  if (!source.includes(placeholder)) throw new Error(`src/unpack.js lost its ${placeholder} placeholder`);
  const packed = gzipSync(runtime, { level: 9 }).toString("base64");
  mkdirSync(outdir, { recursive: true }); // a fresh clone has no static/ folder (its files are build outputs)
  writeFileSync(path.join(outdir, "index.js"), source.replace(placeholder, packed));
  return runtime.length;
}

async function build() {
  // two builds so that only the runtime carries plotly's licence banner
  const unpackedSize = await buildPackedRuntime();
  await esbuild.build({ ...options, entryPoints: { view: options.entryPoints.view } });
  return unpackedSize;
}

const formatSize = (size) => (size < 65536 ? `${(size / 1024).toFixed(1)} KB` : `${(size / 1024 / 1024).toFixed(2)} MB`);

rmSync(path.join(outdir, "index.css"), { force: true }); // left by builds before the CSS moved into the runtime

if (process.argv.includes("--watch")) {
  for (const [name, entry] of Object.entries(options.entryPoints)) {
    const context = await esbuild.context({ ...options, minify: false, sourcemap: "inline", entryPoints: { [name]: entry } });
    await context.watch();
  }
} else {
  const sizes = { "index.js (unpacked)": [await build(), UNPACKED_BUDGET] };
  for (const [file, budget] of Object.entries(BUDGETS)) sizes[file] = [statSync(path.join(outdir, file)).size, budget];
  let failed = false;
  for (const [file, [size, budget]] of Object.entries(sizes)) {
    console.log(`${file}: ${formatSize(size)} (budget ${formatSize(budget)})`);
    if (size > budget) {
      console.error(`${file} exceeds its budget`);
      failed = true;
    }
  }
  if (failed) process.exit(1);
}
