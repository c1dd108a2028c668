import { defineConfig, type Plugin } from "vite";
import { gzipSync } from "node:zlib";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** helios-gateway serves NAME.gz to browsers that accept gzip: write one next to each text file. */
function precompress(): Plugin {
  let outDir = "dist";
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
  return {
    name: "helios-precompress",
    apply: "build",
    configResolved(config) {
      outDir = config.build.outDir;
    },
    closeBundle() {
      for (const path of walk(outDir)) {
        if (!/\.(html|js|css|json|svg|txt|map)$/.test(path)) continue;
        writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }));
      }
    },
  };
}

export default defineConfig({
  // Relative asset URLs: the page works wherever it is mounted (behind a proxy under a prefix too).
  base: "./",
  plugins: [precompress()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 2048,
    // No inline <script>/<style>, no data: module URLs: everything obeys the gateway's CSP.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
