// Built into ../static (committed, so the Studio works offline without npm); relative asset URLs, so the page
// works wherever it is mounted (`naestro studio` at /, or beside the LangGraph API).
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "./",
  build: { outDir: "../static", emptyOutDir: true, target: "es2022", sourcemap: false },
  test: { include: ["test/**/*.test.ts"], environment: "node" },
});
