// Runs that `naestro worker`s execute (issue 20), in Debian's Chromium (playwright-core) against a real
// `naestro studio`: the runs list and the run view say where each stands as `naestro runs show` does. Run by
// tests/studio/test_browser_remote.py, which writes the runs; EXPECT is their JSON map run id -> the words the
// status badge must show. Exit 0 when every step passed; otherwise the failing step on stderr and exit 1.
import { chromium } from "playwright-core";

const url = process.env.STUDIO_URL;
const out = process.env.ARTIFACTS;
const expect = JSON.parse(process.env.EXPECT ?? "{}");
const chromePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (!url || !out || !Object.keys(expect).length) throw new Error("set STUDIO_URL, ARTIFACTS, EXPECT");

const browser = await chromium.launch({ executablePath: chromePath, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync"] });
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.setDefaultTimeout(300_000); // generous: a shared, loaded machine; not a timing assertion

let current = "start";
const step = (name) => { current = name; console.log(`step: ${name}`); };

try {
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
  if (problems.length) throw new Error(problems.join("\n"));
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.error(`FAILED at step "${current}": ${e.message}`);
  await page.screenshot({ path: `${out}/remote-failed.png`, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
