// What every Studio browser scenario shares: Debian's Chromium (playwright-core, no downloaded browser), one page
// whose errors are collected as problems, named steps, screenshots in $ARTIFACTS, and the outcome the Python test
// reads — exit 0 with a JSON line when every step passed and no problem was seen; otherwise the failing step on
// stderr, a screenshot of the page as it was, and exit 1.
import { chromium } from "playwright-core";

/**
 * Open the browser and one page. `watch`: also count console errors and HTTP >= 400 responses as problems;
 * `acceptDialogs`: confirm() dialogs are accepted; `timeoutMs`: generous waits on a shared machine, never a
 * timing assertion.
 */
export async function studioPage({ out, height = 960, timeoutMs, watch = true, acceptDialogs = false }) {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"] });
  const page = await browser.newPage({ viewport: { width: 1280, height } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  if (watch) {
    page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()} ${m.location().url}`); });
    page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`); });
  }
  if (acceptDialogs) page.on("dialog", (d) => void d.accept());
  page.setDefaultTimeout(timeoutMs);
  const ctx = { browser, page, problems, current: "start" };
  ctx.step = (name) => { ctx.current = name; console.log(`step: ${name}`); };
  ctx.shot = (name) => page.screenshot({ path: `${out}/${name}.png`, fullPage: true });
  return ctx;
}

/** Run `body` (its return value is printed with ok: true), then close the browser whatever happened. */
export async function scenario(ctx, body) {
  try {
    const result = await body();
    if (ctx.problems.length) throw new Error(ctx.problems.join("\n"));
    console.log(JSON.stringify({ ok: true, ...result }));
  } catch (e) {
    await ctx.shot(`failed-${ctx.current.replace(/\W+/g, "-")}`).catch(() => undefined);
    console.error(`FAILED at step "${ctx.current}": ${e instanceof Error ? e.message : e}\n${ctx.problems.join("\n")}`);
    process.exitCode = 1;
  } finally {
    await ctx.browser.close();
  }
}
