// Memory across runs (issue 19): what the home remembers, newest first and grouped by day, with a search box.
// Both come from the Studio's memory routes (studio/memoryview.py); a search goes through the policy gate as the
// operator and is audited, the same as `naestro memory search`.

import { api, type MemoryEpisode, type MemoryTimeline } from "../api";
import { h } from "../dom";

const KINDS = ["run", "task", "verdict", "denial", "consent"];

/** Episodes grouped by the day of their valid time (UTC), in the order given (the API sends newest first). */
export function byDay(episodes: readonly MemoryEpisode[]): [string, MemoryEpisode[]][] {
  const days = new Map<string, MemoryEpisode[]>();
  for (const e of episodes) {
    const day = e.valid_at.slice(0, 10);
    const list = days.get(day);
    if (list) list.push(e);
    else days.set(day, [e]);
  }
  return [...days];
}

/** "task: 2 failed · 1 passed" per kind, from the API's `kind:outcome` counts; kinds in KINDS order. */
export function tally(counts: Readonly<Record<string, number>>): { kind: string; total: number; detail: string }[] {
  const per = new Map<string, [string, number][]>();
  for (const [key, n] of Object.entries(counts)) {
    const [kind = key, outcome = ""] = key.split(":");
    per.set(kind, [...(per.get(kind) ?? []), [outcome, n]]);
  }
  const rank = (k: string): number => (KINDS.includes(k) ? KINDS.indexOf(k) : KINDS.length);
  return [...per].sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b)).map(([kind, outcomes]) => ({
    kind,
    total: outcomes.reduce((sum, [, n]) => sum + n, 0),
    detail: outcomes.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([o, n]) => (o ? `${n} ${o}` : String(n))).join(" · "),
  }));
}

function outcomeBadge(outcome: string): HTMLElement {
  return h("span", { class: `badge b-${outcome}` }, outcome);
}

function runLink(runId: string): HTMLElement {
  return h("a", { href: `#/runs/${encodeURIComponent(runId)}` }, runId);
}

function episode(e: MemoryEpisode): HTMLLIElement {
  return h("li", { "data-key": e.key },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("time", { datetime: e.valid_at, class: "muted" }, e.valid_at.slice(11, 16)),
    h("span", { class: "badge" }, e.kind), outcomeBadge(e.outcome), runLink(e.run_id),
    h("span", { class: "muted" }, e.slice),
    h("span", { class: "fact" }, e.text));
}

function results(query: string, hits: MemoryEpisode[]): HTMLElement {
  if (!hits.length) return h("p", { class: "muted" }, `No remembered fact matches “${query}”.`);
  return h("table", { class: "grid small" }, h("caption", {}, `Best matches for “${query}”, best first`),
    h("thead", {}, h("tr", {}, ...["Score", "When", "Run", "Kind", "Outcome", "Fact"]
      .map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, ...hits.map((e) => h("tr", { "data-key": e.key },
      h("td", { class: "num" }, (e.score ?? 0).toFixed(3)),
      h("td", {}, `${e.valid_at.slice(0, 10)} ${e.valid_at.slice(11, 16)}`),
      h("td", {}, runLink(e.run_id)), h("td", {}, e.kind), h("td", {}, outcomeBadge(e.outcome)),
      h("td", { class: "goal" }, e.text)))));
}

export function memoryPage(main: HTMLElement): () => void {
  const note = h("p", { class: "muted" }, "loading…");
  const stats = h("dl", { class: "stats" });
  const days = h("div", { "aria-label": "Remembered episodes, newest first" });
  const skills = h("section", { "aria-label": "Skills" });
  const found = h("div", { id: "memory-results", "aria-live": "polite" });
  const query = h("input", { id: "memory-q", type: "search", name: "q", autocomplete: "off",
    placeholder: "e.g. why did write_fib fail" });
  const go = h("button", { type: "submit" }, "Search");
  const kind = h("select", { id: "memory-kind" }, h("option", { value: "" }, "every kind"),
    ...KINDS.map((k) => h("option", { value: k }, k)));
  const search = h("form", { role: "search", class: "form", onsubmit: async (ev: Event) => {
    ev.preventDefault();
    const q = query.value.trim();
    if (!q) return;
    go.disabled = true;
    found.replaceChildren(h("p", { class: "muted" }, "searching…"));
    try {
      found.replaceChildren(h("h2", {}, "Search results"), results(q, await api.memorySearch(q)));
    } catch (e) {
      found.replaceChildren(h("p", { class: "error", role: "alert" }, `Search failed: ${(e as Error).message}`));
    } finally {
      go.disabled = false;
    }
  } }, h("label", { for: "memory-q" }, "Search memory (hybrid BM25 + MiniLM, through the policy gate)"),
  h("div", { class: "row" }, h("div", { class: "grow" }, query), go));
  main.append(h("h1", {}, "Memory"), h("p", { class: "muted" },
    "Facts Naestro remembers across runs: each run, task outcome, evaluator verdict, policy denial and consent, " +
    "by the time it became true (the same data as `naestro memory timeline`)."),
  search, found, note, stats,
  h("div", { class: "row" }, h("label", { for: "memory-kind" }, "Show"), kind),
  h("h2", {}, "Timeline"), days, skills);

  const render = (data: MemoryTimeline): void => {
    const n = data.episodes.length;
    note.textContent = (n ? `${n} episode(s) from ${data.runs.length} run(s), newest first.` :
      "Nothing remembered yet.") + (data.enabled_for_runs ? "" :
      " Runs write memory only with NAESTRO_MEMORY=1 (or `naestro memory ingest`).");
    stats.replaceChildren(...tally(data.counts).flatMap((t) => [h("dt", {}, `${t.kind} (${t.total})`),
      h("dd", { class: "small" }, t.detail)]));
    days.replaceChildren(...byDay(data.episodes).map(([day, eps]) => h("section", { "aria-label": day },
      h("h3", {}, day), h("ol", { class: "timeline memory" }, ...eps.map(episode)))));
    skills.replaceChildren(...(data.skills.length ? [h("h2", {}, "Skills (plan shapes that passed again and again)"),
      h("table", { class: "grid small" }, h("caption", {}, "naestro skills list"),
        h("thead", {}, h("tr", {}, ...["Skill", "Shape", "Support", "Success", "Keywords"]
          .map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, ...data.skills.map((s) => h("tr", {}, h("td", {}, h("code", {}, s.id)), h("td", {}, s.name),
          h("td", { class: "num" }, String(s.support)), h("td", { class: "num" }, `${Math.round(100 * s.success_rate)} %`),
          h("td", {}, s.keywords.join(", "))))))] : []));
  };
  const load = async (): Promise<void> => {
    try {
      render(await api.memoryTimeline(kind.value || undefined));
    } catch (e) {
      note.textContent = `Could not load memory: ${(e as Error).message}`;
    }
  };
  kind.addEventListener("change", () => void load());
  void load();
  return () => undefined;
}
