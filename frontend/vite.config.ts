/// <reference types="vitest/config" />
// The bundle is committed and CI rebuilds it and fails on any difference, so the output must be a
// pure function of the sources and the lockfile: fixed file names, no hashes, no sourcemaps.
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";
import { defineConfig, type Plugin } from "vite";

const outDir = fileURLToPath(new URL("../src/defectlab/web/static/defectlab", import.meta.url));

// Vite leaves whitespace in ES-format library builds; the bundle is served to browsers as is,
// so squeeze it once more (esbuild is deterministic for the same input and version).
const minifyBundle: Plugin = {
  name: "defectlab-minify-bundle",
  apply: "build",
  enforce: "post",
  async generateBundle(_options, bundle) {
    for (const output of Object.values(bundle)) {
      if (output.type !== "chunk") continue;
      const result = await transform(output.code, { minify: true, format: "esm", target: "es2022", legalComments: "none" });
      output.code = result.code;
    }
  },
};

export default defineConfig({
  plugins: [minifyBundle],
  publicDir: false,
  build: {
    outDir,
    // The folder holds other static files of the package; only canvas.js and canvas.css are ours.
    emptyOutDir: false,
    target: "es2022",
    minify: "esbuild",
    cssMinify: "esbuild",
    sourcemap: false,
    reportCompressedSize: false,
    copyPublicDir: false,
    lib: {
      entry: fileURLToPath(new URL("src/index.ts", import.meta.url)),
      formats: ["es"],
      fileName: () => "canvas.js",
      cssFileName: "canvas",
    },
  },
  esbuild: {
    legalComments: "none",
  },
  server: {
    host: "127.0.0.1",
  },
  test: {
    environment: "node",
    include: ["test/**/*.test.ts"],
  },
});
