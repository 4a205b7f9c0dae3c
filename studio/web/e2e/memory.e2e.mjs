// The memory page in Debian's Chromium (playwright-core) against a real `naestro studio` whose home holds a few
// remembered episodes in the embedded FalkorDB: the timeline shows every episode, the kind filter narrows it, and a
// search puts the episode it asks about first. Run by tests/studio/test_browser.py, which writes the episodes and
// starts the server; EPISODES is their JSON list ({key, text}), SEARCH the query and HIT the key it must find.
// Exit 0 when every step passed; otherwise the failing step on stderr and exit 1.
import { scenario, studioPage } from "./harness.mjs";

const url = process.env.STUDIO_URL;
const out = process.env.ARTIFACTS;
const episodes = JSON.parse(process.env.EPISODES ?? "[]");
const query = process.env.SEARCH;
const hit = process.env.HIT;
if (!url || !out || !episodes.length || !query || !hit) throw new Error("set STUDIO_URL, ARTIFACTS, EPISODES, SEARCH, HIT");

// generous: the first memory request starts FalkorDB and the first search loads MiniLM on a shared 2-core machine;
// not a timing assertion
const ctx = await studioPage({ out, height: 960, timeoutMs: 300_000 });
const { page, step, shot } = ctx;

await scenario(ctx, async () => {
  step("open the memory page from the nav");
  await page.goto(`${url}#/runs`);
  await page.getByRole("link", { name: "Memory", exact: true }).click();
  await page.getByRole("heading", { name: "Memory", level: 1 }).waitFor();

  step("the timeline shows every remembered episode");
  for (const e of episodes) {
    const item = page.locator(`ol.timeline li[data-key="${e.key}"]`);
    await item.waitFor();
    const text = await item.textContent();
    if (!text?.includes(e.text)) throw new Error(`episode ${e.key} shows ${JSON.stringify(text)}, not its fact`);
  }
  await page.getByText(`${episodes.length} episode(s)`).waitFor();

  step("the kind filter shows only denials");
  await page.getByLabel("Show").selectOption("denial");
  const denials = episodes.filter((e) => e.key.split("/")[1] === "denial");
  const others = episodes.filter((e) => e.key.split("/")[1] !== "denial");
  if (!denials.length || !others.length) throw new Error("EPISODES needs a denial and something else");
  await page.locator(`ol.timeline li[data-key="${others[0].key}"]`).waitFor({ state: "detached" });
  for (const e of denials) await page.locator(`ol.timeline li[data-key="${e.key}"]`).waitFor();
  await page.getByLabel("Show").selectOption("");
  await page.locator(`ol.timeline li[data-key="${others[0].key}"]`).waitFor();

  step("search: the episode asked about comes first");
  await page.getByLabel(/Search memory/).fill(query);
  await page.getByRole("button", { name: "Search", exact: true }).click();
  const first = page.locator("#memory-results tbody tr").first();
  await first.waitFor();
  const key = await first.getAttribute("data-key");
  if (key !== hit) {
    const rows = await page.locator("#memory-results tbody tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.key));
    throw new Error(`search "${query}" ranked ${JSON.stringify(rows)}; expected ${hit} first`);
  }
  await shot("memory");

  return { first: key };
});
