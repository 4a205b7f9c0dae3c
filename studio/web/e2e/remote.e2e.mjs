// Runs that `naestro worker`s execute (issue 20), in Debian's Chromium (playwright-core) against a real
// `naestro studio`: the runs list and the run view say where each stands as `naestro runs show` does. Run by
// tests/studio/test_browser_remote.py, which writes the runs; EXPECT is their JSON map run id -> the words the
// status badge must show. Exit 0 when every step passed; otherwise the failing step on stderr and exit 1.
import { scenario, studioPage } from "./harness.mjs";

const url = process.env.STUDIO_URL;
const out = process.env.ARTIFACTS;
const expect = JSON.parse(process.env.EXPECT ?? "{}");
if (!url || !out || !Object.keys(expect).length) throw new Error("set STUDIO_URL, ARTIFACTS, EXPECT");

const ctx = await studioPage({ out, height: 800, timeoutMs: 300_000, watch: false });
const { page, step } = ctx;

await scenario(ctx, async () => {
  step("the runs list shows each remote run's status in words");
  await page.goto(`${url}#/runs`);
  for (const [runId, words] of Object.entries(expect)) {
    const row = page.locator("tr", { has: page.getByRole("link", { name: runId, exact: true }) });
    await row.locator(".badge", { hasText: words }).waitFor();
  }
  await page.screenshot({ path: `${out}/remote-runs.png`, fullPage: true });

  step("the run view of each says the same");
  for (const [runId, words] of Object.entries(expect)) {
    await page.goto(`${url}#/runs/${encodeURIComponent(runId)}`);
    await page.locator(".run-head .badge", { hasText: words }).waitFor();
  }
  return {};
});
