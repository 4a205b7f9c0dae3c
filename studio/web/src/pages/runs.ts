// Runs list: status, cost, tokens, duration, tasks passed, live. Refreshed every few seconds while shown.

import { api, type RunSummary } from "../api";
import { fmtS, fmtUsd, h } from "../dom";
import { statusLabel } from "../status";

/** ``label``: the words shown (e.g. "running on HOST:PID" for a run a worker drives); the color is the status's. */
export function statusBadge(status: string, live = false, label = status): HTMLElement {
  return h("span", { class: `badge b-${status}` }, live ? h("span", { class: "pulse", "aria-hidden": "true" }) : null,
    label);
}

function row(r: RunSummary): HTMLTableRowElement {
  return h("tr", {},
    h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(r.run_id)}` }, r.run_id)),
    h("td", { class: "goal" }, r.goal),
    h("td", {}, statusBadge(r.status, r.live, statusLabel(r.status, r))),
    h("td", { class: "num" }, `${r.tasks_passed}/${r.tasks}`),
    h("td", { class: "num" }, fmtUsd(r.cost_usd)),
    h("td", { class: "num" }, r.tokens.toLocaleString()),
    h("td", { class: "num" }, fmtS(r.duration_s)),
    h("td", {}, r.mode));
}

export function runsPage(main: HTMLElement): () => void {
  const body = h("tbody");
  const note = h("p", { class: "muted" }, "loading…");
  main.append(h("h1", {}, "Runs"), note,
    h("table", { class: "grid" },
      h("caption", { class: "sr-only" }, "Runs in this Naestro home, newest first"),
      h("thead", {}, h("tr", {}, ...["Run", "Goal", "Status", "Tasks passed", "Cost", "Tokens", "Duration", "Mode"]
        .map((c) => h("th", { scope: "col" }, c)))), body));
  const load = async (): Promise<void> => {
    try {
      const runs = await api.runs();
      body.replaceChildren(...runs.map(row));
      note.textContent = runs.length ? `${runs.length} run(s)` : "No runs yet: start one from New run.";
    } catch (e) {
      note.textContent = `Could not load runs: ${(e as Error).message}`;
    }
  };
  void load();
  const timer = window.setInterval(() => void load(), 4000);
  return () => window.clearInterval(timer);
}
