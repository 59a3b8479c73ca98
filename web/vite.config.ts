/// <reference types="vitest/config" />
// Vite build and dev-server settings; the build lands where the kernel serves it (/ and /assets).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import { compression } from "vite-plugin-compression2";

const outDir = fileURLToPath(new URL("../mes_kernel/static/web", import.meta.url));
const api = process.env.MES_API_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  // Every script and stylesheet of 1 KiB or more gets `.br` and `.gz` twins; the kernel picks one per Accept-Encoding.
  plugins: [react(), compression({ algorithms: ["brotliCompress", "gzip"], threshold: 1024,
                                   include: [/\.(js|css|svg|json)$/] })],
  base: "/",
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: "assets",
    chunkSizeWarningLimit: 700,
  },
  // the ZPL renderer's worker (src/labels/zpl.worker.ts) is an ES module of its own chunk
  worker: { format: "es" },
  server: { proxy: { "/api": api } },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}", "scripts/**/*.test.mjs"],
    css: false,
    // Generous deadlines: the suite must hold on a busy 2-core machine shared by several builds.
    testTimeout: 30_000,
  },
});
