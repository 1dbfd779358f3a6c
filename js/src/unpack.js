// The runtime as it travels: index.js, gzipped and base64-encoded into PACKED by build.mjs (a third of
// its size in a saved notebook or page). On first use it is decompressed in the browser
// (DecompressionStream) and imported from a Blob URL; nothing is fetched, so it works offline.

const PACKED = "__DVZ_PACKED_RUNTIME__";

let runtime = null;

/** The unpacked runtime module's default export, imported once per evaluation of this module. */
function unpacked() {
  runtime ??= (async () => {
    const bytes = Uint8Array.from(atob(PACKED), (char) => char.charCodeAt(0));
    const source = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).blob();
    const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    try {
      return (await import(/* webpackIgnore: true */ url)).default;
    } finally {
      URL.revokeObjectURL(url);
    }
  })();
  return runtime;
}

export default {
  async initialize(context) {
    return (await unpacked()).initialize(context);
  },
  async render(context) {
    return (await unpacked()).render(context);
  },
};
