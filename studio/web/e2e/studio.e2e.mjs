// End to end in Debian's Chromium (playwright-core, no downloaded browser) against a real `naestro studio` with
// scripted model text: new run from the form (plan preview, edited JSON, validated) → tasks turn green live →
// approve the consent banner → roll back a step and see the file go → metrics page. Run by
// tests/studio/test_browser.py, which starts the servers; screenshots go to $ARTIFACTS.
// Exit 0 when every step passed; otherwise the failing step on stderr and exit 1.
import { scenario, studioPage } from "./harness.mjs";

const url = process.env.STUDIO_URL;
const out = process.env.ARTIFACTS;
const goal = process.env.GOAL;
if (!url || !out || !goal) throw new Error("set STUDIO_URL, ARTIFACTS and GOAL");

const ctx = await studioPage({ out, height: 960, timeoutMs: 240_000, acceptDialogs: true });
const { page, step, shot } = ctx;

await scenario(ctx, async () => {
  step("new run: goal -> plan preview");
  await page.goto(`${url}#/new`);
  await page.getByLabel("Goal").fill(goal);
  await page.getByRole("button", { name: "Preview plan" }).click();
  await page.locator("svg.dag g.node").nth(1).waitFor();

  step("edit the plan JSON and validate it");
  const text = page.getByLabel(/Plan JSON/);
  const plan = JSON.parse(await text.inputValue());
  plan.tasks[0].description += " (edited before the run)";
  await text.fill(JSON.stringify(plan, null, 2));
  await page.getByRole("button", { name: "Validate" }).click();
  await page.getByText("The plan is valid.").waitFor();
  await shot("new-run");

  step("run it and watch the first task turn green");
  await page.getByRole("button", { name: "Run", exact: true }).click();
  // the page moves once the run's first event exists; the first run of a Studio also starts the MCP servers,
  // which took minutes on a loaded 2-core machine
  await page.waitForURL(/#\/runs\/[^/]+$/, { timeout: 600_000 });
  const runId = decodeURIComponent(page.url().split("#/runs/")[1]);
  console.log(`run: ${runId}`);
  await page.locator('g.node[data-task="greet"][data-status="passed"]').waitFor();

  step("approve the consent banner");
  const approve = page.getByRole("button", { name: "Approve", exact: true });
  await approve.waitFor();
  await page.locator('g.node[data-task="note"][data-status="waiting"]').waitFor();
  await shot("run-consent");
  await approve.click();
  await page.locator('g.node[data-task="note"][data-status="passed"]').waitFor();
  await page.locator(".run-head .badge.b-passed").waitFor();
  await page.getByText("approved by studio (studio)").first().waitFor();
  await shot("run-passed");

  step("history: roll back to before the note and see b.txt go");
  await page.getByRole("link", { name: "History" }).click();
  await page.locator('li[data-file="b.txt"]').waitFor();
  await page.locator('button[data-next*="task:note"]').first().click();
  await page.locator('li[data-file="b.txt"]').waitFor({ state: "detached" });
  await page.locator('li[data-file="a.txt"]').waitFor();
  await page.getByText("run status: rolled_back").waitFor();
  await shot("history");

  step("metrics page");
  await page.getByRole("link", { name: "Metrics" }).click();
  await page.getByRole("img", { name: "Model calls by endpoint" }).locator("rect.bar").first().waitFor();
  await page.getByRole("img", { name: "Runs by status" }).waitFor();
  await page.getByRole("cell", { name: "coder" }).first().waitFor(); // the router's win-rate table
  await page.getByRole("img", { name: "Router win-rate" }).waitFor();
  await shot("metrics");

  step("keyboard: the nav links and the run link are reachable with Tab");
  await page.goto(`${url}#/runs`);
  await page.getByRole("link", { name: runId }).waitFor();
  const seen = [];
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press("Tab");
    seen.push(await page.evaluate(() => document.activeElement?.textContent ?? ""));
  }
  if (!seen.includes("New run") || !seen.includes(runId)) throw new Error(`Tab order missed links: ${seen}`);
  return { run_id: runId };
});
