// Metrics: the series `naestro metrics` serves to Prometheus (studio/metrics.py), drawn as plain SVG bar charts,
// plus cost and duration per run from the runs list.

import { api, type Family, type RouterArm, type RunSummary } from "../api";
import { barChart, type Bar } from "../charts";
import { fmtS, fmtUsd, h } from "../dom";

/** Bars of one family's samples (by one label), optionally only the samples named `sample`. */
export function byLabel(fams: Family[], name: string, label: string, sample = name): Bar[] {
  const fam = fams.find((f) => f.name === name);
  const out = new Map<string, number>();
  for (const s of fam?.samples ?? []) {
    if (s.name !== sample || s.value === null) continue;
    const key = s.labels[label] ?? "all";
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return [...out].map(([l, value]) => ({ label: l, value }));
}

/** Mean of a histogram per label: its _sum over its _count. */
export function meanBy(fams: Family[], name: string, label: string): Bar[] {
  const sums = new Map(byLabel(fams, name, label, `${name}_sum`).map((b) => [b.label, b.value]));
  return byLabel(fams, name, label, `${name}_count`).filter((c) => c.value > 0)
    .map((c) => ({ label: c.label, value: (sums.get(c.label) ?? 0) / c.value }));
}

function gauge(fams: Family[], name: string): number | null {
  return fams.find((f) => f.name === name)?.samples[0]?.value ?? null;
}

const pct = (v: number | null): string => (v === null ? "—" : `${(100 * v).toFixed(0)} %`);

function figure(title: string, chart: SVGElement): HTMLElement {
  return h("figure", { class: "card" }, chart, h("figcaption", {}, title));
}

export function metricsPage(main: HTMLElement): () => void {
  const body = h("div", { class: "charts" });
  const stats = h("dl", { class: "stats" });
  const router = h("section", { "aria-label": "Router" });
  main.append(h("h1", {}, "Metrics"), h("p", { class: "muted" },
    "Totals over every run in this home, folded from the runs' events (the same series as `naestro metrics`)."),
  stats, body, router);
  const load = async (): Promise<void> => {
    const [fams, runs, arms] = await Promise.all([api.metrics(), api.runs(),
      api.router().catch((): RouterArm[] => [])]);
    const cells = (a: RouterArm): string[] => [a.kind, a.endpoint, String(a.routed),
      a.spill_pct === null ? "—" : `${a.spill_pct} %`, String(a.outcomes), pct(a.win_rate), a.posterior_mean.toFixed(2)];
    router.replaceChildren(h("h2", {}, "Router win-rates (naestro router stats)"), arms.length ?
      h("div", { class: "charts" }, figure("Win-rate per role and endpoint", barChart("Router win-rate",
        arms.filter((a) => a.win_rate !== null).map((a) => ({ label: `${a.kind}/${a.endpoint}`, value: a.win_rate ?? 0 })),
        (v) => `${(100 * v).toFixed(0)}%`)),
      h("table", { class: "grid small" }, h("caption", {}, "Per (role, endpoint): routed calls, spill, outcomes"),
        h("thead", {}, h("tr", {}, ...["Role", "Endpoint", "Routed", "Spill", "Outcomes", "Win-rate", "Posterior"]
          .map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, ...arms.map((a) => h("tr", {}, ...cells(a).map((c) => h("td", {}, c)))))))
      : h("p", { class: "muted" }, "No routed calls recorded yet."));
    const recent: RunSummary[] = runs.slice(0, 12).reverse();
    const kv = (k: string, v: string): HTMLElement[] => [h("dt", {}, k), h("dd", {}, v)];
    stats.replaceChildren(
      ...kv("Run success", pct(gauge(fams, "naestro_run_success_ratio"))),
      ...kv("Task success", pct(gauge(fams, "naestro_task_success_ratio"))),
      ...kv("Spillover (router)", pct(gauge(fams, "naestro_spill_ratio"))),
      ...kv("Consent waiting", String(gauge(fams, "naestro_consent_waiting") ?? 0)),
      ...kv("Total cost", fmtUsd(byLabel(fams, "naestro_cost_usd", "endpoint", "naestro_cost_usd_total")
        .reduce((a, b) => a + b.value, 0))));
    body.replaceChildren(
      figure("Runs by status", barChart("Runs by status", byLabel(fams, "naestro_runs", "status"), String)),
      figure("Model calls by endpoint", barChart("Model calls by endpoint",
        byLabel(fams, "naestro_model_calls", "endpoint", "naestro_model_calls_total"), String)),
      figure("Mean model latency (s) by endpoint", barChart("Mean model latency by endpoint",
        meanBy(fams, "naestro_model_latency_seconds", "endpoint"), (v) => v.toFixed(2))),
      figure("Tokens by type", barChart("Tokens by type",
        byLabel(fams, "naestro_tokens", "type", "naestro_tokens_total"), (v) => v.toLocaleString())),
      figure("Policy decisions by verdict", barChart("Policy decisions by verdict",
        byLabel(fams, "naestro_policy_decisions", "verdict", "naestro_policy_decisions_total"), String)),
      figure("Tasks by final status", barChart("Tasks by final status",
        byLabel(fams, "naestro_tasks", "status", "naestro_tasks_total"), String)),
      figure("Cost per run (last 12)", barChart("Cost per run",
        recent.map((r) => ({ label: r.run_id.slice(-4), value: r.cost_usd })), fmtUsd)),
      figure("Duration per run (last 12)", barChart("Duration per run",
        recent.map((r) => ({ label: r.run_id.slice(-4), value: r.duration_s })), fmtS)));
  };
  load().catch((e: Error) => body.replaceChildren(h("p", { class: "error" }, `Could not load metrics: ${e.message}`)));
  return () => undefined;
}
