// Run view: the plan DAG with live task colors (SSE), the consent banner, the event stream, model and tool calls,
// policy decisions, evaluator verdicts and the report.

import { api, ApiError, type Pending, type Plan, type RunDetail } from "../api";
import { dagSvg } from "../dag";
import { fmtS, fmtUsd, h, toast } from "../dom";
import { fold, initial, reduce, type RunEvent, type RunView, type TaskStatus } from "../reducer";
import { needsPolling, statusLabel } from "../status";
import { statusBadge } from "./runs";

const REFRESH = new Set(["planned", "replanned", "waiting_for_consent", "consent_given", "consent_refused",
  "task_finished", "run_finished", "report_written", "run_resumed"]);
const LEGEND: TaskStatus[] = ["pending", "running", "checking", "waiting", "passed", "failed", "skipped"];
const MAX_EVENTS = 300;
const POLL_MS = 4000; // a run workers execute: look again this often while it is queued or driven

export function eventLine(ev: RunEvent): string {
  const pick = (k: string): string => (ev[k] === undefined ? "" : ` ${k}=${typeof ev[k] === "object" ?
    JSON.stringify(ev[k]) : String(ev[k])}`);
  const time = typeof ev["ts"] === "string" ? ev["ts"].slice(11, 23) : "";
  const fields = ["task", "status", "tool", "action", "verdict", "endpoint", "attempt", "by"].map(pick).join("");
  return `${time} ${ev.event}${fields}`;
}

function table(caption: string, head: string[], rows: string[][]): HTMLElement {
  return h("table", { class: "grid small" }, h("caption", {}, caption),
    h("thead", {}, h("tr", {}, ...head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))));
}

const cell = (v: unknown): string => (v === undefined || v === null ? "" :
  typeof v === "object" ? JSON.stringify(v) : String(v));

function consentCard(runId: string, p: Pending, done: () => void): HTMLElement {
  const args = h("textarea", { id: `args-${p.id}`, rows: 3, spellcheck: "false", class: "code" });
  args.value = JSON.stringify(p.arguments, null, 2);
  const error = h("p", { class: "error", role: "alert" });
  const answer = async (approve: boolean, remember = false, edited = false): Promise<void> => {
    let argumentsValue: unknown;
    if (edited) {
      try {
        argumentsValue = JSON.parse(args.value);
      } catch {
        error.textContent = "The arguments are not valid JSON.";
        args.focus();
        return;
      }
    }
    try {
      const res = await api.consent(runId, { consent_id: p.id, approve, remember,
        ...(edited ? { arguments: argumentsValue } : {}) });
      toast(`${approve ? "Approved" : "Denied"} ${p.action}; the run is ${res.status}` +
        (res.status === "queued" ? " for a worker." : "."));
      done();
    } catch (e) {
      error.textContent = (e as Error).message;
    }
  };
  return h("div", { class: "consent-card" },
    h("p", {}, h("strong", {}, `Task ${p.task} (${p.role}) wants ${p.action}`), ` — risk: ${p.risk}`),
    h("p", { class: "muted" }, `Why it asks: ${(p.reasons ?? []).join("; ")}`),
    h("label", { for: `args-${p.id}` }, "Arguments (edit, then “Approve edited”)"), args, error,
    h("div", { class: "buttons" },
      h("button", { type: "button", class: "ok", onclick: () => void answer(true) }, "Approve"),
      h("button", { type: "button", onclick: () => void answer(true, true) }, "Approve for this run"),
      h("button", { type: "button", onclick: () => void answer(true, false, true) }, "Approve edited"),
      h("button", { type: "button", class: "danger", onclick: () => void answer(false) }, "Deny")));
}

export function runPage(main: HTMLElement, runId: string): () => void {
  let detail: RunDetail | null = null;
  let plan: Plan | null = null;
  let view: RunView = initial([]);
  let source: EventSource | null = null;
  let refreshTimer = 0;
  let pendingTimer = 0;
  let pollTimer = 0;
  let closed = false;

  const head = h("div", { class: "run-head" });
  const banner = h("section", { class: "consent", "aria-label": "Consent requests", "aria-live": "polite" });
  const dag = h("div", { class: "dag-wrap" });
  const legend = h("ul", { class: "legend", "aria-label": "Task status colors" },
    ...LEGEND.map((s) => h("li", {}, h("span", { class: `swatch st-${s}`, "aria-hidden": "true" }), s)));
  const events = h("ol", { class: "events", "aria-label": "Event stream" });
  const details = h("div", { class: "details" });
  main.append(head, banner, h("section", { "aria-label": "Plan" }, h("h2", {}, "Plan"), dag, legend),
    h("section", { "aria-label": "Events" }, h("h2", {}, "Events ", h("span", { class: "muted", id: "live" })),
      events), details);

  const drawHead = (): void => {
    if (!detail) return;
    const status = view.status || detail.status;
    const actions: HTMLElement[] = [h("a", { href: `#/runs/${encodeURIComponent(runId)}/history` }, "History")];
    if (["rolled_back", "interrupted", "paused", "error"].includes(detail.status) && !detail.running_here) {
      actions.push(h("button", { type: "button", onclick: async () => {
        try {
          await api.resume(runId);
          toast("Resumed.");
          scheduleRefresh();
        } catch (e) { toast((e as Error).message); }
      } }, "Resume"));
    }
    head.replaceChildren(h("h1", {}, detail.goal || runId),
      h("p", {}, statusBadge(status, status === "running" || status === "planning", statusLabel(status, detail)),
        " ",
        h("span", { class: "muted" }, `${runId} · ${detail.mode} · ${fmtUsd(Math.max(view.costUsd, detail.cost_usd))}` +
          ` · ${Math.max(view.tokens, detail.tokens).toLocaleString()} tokens · ${fmtS(detail.duration_s)}` +
          ` · ${view.modelCalls} model / ${view.toolCalls} tool calls · ${view.denials} denied`)),
      detail.error ? h("p", { class: "error" }, detail.error) : "", h("p", { class: "actions" }, ...actions));
  };

  const drawDag = (): void => {
    dag.replaceChildren(plan ? dagSvg(plan, view) : h("p", { class: "muted" }, "Planning…"));
  };

  const addEvent = (ev: RunEvent): void => {
    // follow the newest event unless the reader scrolled up to read older ones
    const following = events.scrollHeight - events.scrollTop - events.clientHeight < 40;
    events.append(h("li", { class: `ev-${ev.event}` }, eventLine(ev)));
    while (events.childElementCount > MAX_EVENTS) events.firstElementChild?.remove();
    if (following) events.scrollTop = events.scrollHeight;
  };

  const drawDetails = (): void => {
    if (!detail) return;
    details.replaceChildren(
      h("section", { "aria-label": "Calls" }, h("h2", {}, "Model and tool calls"),
        table("Model calls (tokens, latency, cost) and tool calls (receipts)",
          ["Event", "Task", "Endpoint / tool", "OK", "Tokens in/out", "Seconds", "Cost", "Receipt (args → result)"],
          detail.calls.map((c) => [c.event, cell(c["task"]), cell(c["endpoint"] ?? c["tool"]), cell(c["ok"]),
            c.event === "model_call" ? `${cell(c["prompt_tokens"])}/${cell(c["completion_tokens"])}` : "",
            cell(c["latency_s"] ?? c["duration_s"]), cell(c["cost_usd"]),
            c["args_sha256"] ? `${cell(c["args_sha256"]).slice(0, 10)} → ${cell(c["result_sha256"]).slice(0, 10)}` :
              cell(c["reasons"])]))),
      h("section", { "aria-label": "Policy" }, h("h2", {}, "Policy decisions and consent"),
        table("Every gate decision, consent request and answer",
          ["Event", "Task", "Action", "Verdict", "Reasons", "By", "µs"],
          detail.policy.map((p) => [p.event, cell(p["task"]), cell(p["action"] ?? p["tool"]), cell(p["verdict"]),
            Array.isArray(p["reasons"]) ? p["reasons"].join("; ") : "", cell(p["by"]), cell(p["latency_us"])]))),
      h("section", { "aria-label": "Verdicts" }, h("h2", {}, "Evaluator verdicts"),
        detail.verdicts.length ? table("Evaluator verdicts with their evidence",
          ["Task", "Evaluator", "Passed", "Score", "Evidence"],
          detail.verdicts.map((v) => [cell(v["task"]), cell(v["evaluator"]), cell(v["passed"]), cell(v["score"]),
            cell(v["evidence"])])) : h("p", { class: "muted" }, "No evaluator checks in this run.")),
      h("section", { "aria-label": "Report" }, h("h2", {}, "Report"),
        detail.report ? h("pre", { class: "report" }, detail.report) : h("p", { class: "muted" }, "Not written yet.")));
  };

  const showPending = async (): Promise<void> => {
    window.clearTimeout(pendingTimer);
    let found: Pending[] = [];
    try {
      found = await api.pending(runId);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
    }
    if (closed) return;
    if (!found.length) {
      banner.replaceChildren();
      // the interrupt is checkpointed just after the event: look again while the run says it waits
      if (view.status === "waiting" || detail?.status === "waiting") {
        pendingTimer = window.setTimeout(() => void showPending(), 500);
      }
      return;
    }
    banner.replaceChildren(h("h2", {}, "Consent needed"),
      ...found.map((p) => consentCard(runId, p, () => { banner.replaceChildren(); scheduleRefresh(); })));
    banner.querySelector<HTMLButtonElement>("button.ok")?.focus({ preventScroll: true });
  };

  const refresh = async (): Promise<void> => {
    try {
      detail = await api.run(runId);
    } catch (e) {
      head.replaceChildren(h("h1", {}, runId), h("p", { class: "error" }, (e as Error).message));
      return;
    }
    if (closed) return;
    // run.json can lag the stream by a moment (the driver saves the outcome after the last event): a status the
    // stream already settled stays unless the record moved on (a rollback, a resume)
    if (!["running", "planning"].includes(detail.status) || !["passed", "failed"].includes(view.status)) {
      view = { ...view, status: detail.status };
    }
    if (detail.plan && JSON.stringify(detail.plan) !== JSON.stringify(plan)) plan = detail.plan;
    drawHead();
    drawDag();
    drawDetails();
    if (detail.status === "waiting" || view.status === "waiting") void showPending();
    window.clearTimeout(pollTimer);
    if (needsPolling(detail)) pollTimer = window.setTimeout(() => void refresh(), POLL_MS);
  };

  function scheduleRefresh(): void {
    window.clearTimeout(refreshTimer);
    refreshTimer = window.setTimeout(() => void refresh(), 250);
  }

  const start = async (): Promise<void> => {
    await refresh();
    if (!detail || closed) return;
    view = fold(initial((detail.plan?.tasks ?? []).map((t) => t.id), detail.status), detail.events);
    view = { ...view, status: detail.status };
    detail.events.slice(-MAX_EVENTS).forEach(addEvent);
    events.scrollTop = events.scrollHeight;
    drawHead();
    drawDag();
    source = new EventSource(api.eventsUrl(runId, view.seen));
    const live = document.getElementById("live");
    source.onopen = () => { if (live) live.textContent = "(live)"; };
    source.onerror = () => { if (live) live.textContent = "(reconnecting…)"; };
    source.addEventListener("event", (msg) => {
      const ev = JSON.parse((msg as MessageEvent<string>).data) as RunEvent;
      view = reduce(view, ev);
      addEvent(ev);
      drawDag();
      drawHead();
      if (REFRESH.has(ev.event)) scheduleRefresh();
      if (ev.event === "waiting_for_consent") void showPending();
    });
  };
  void start();
  return () => {
    closed = true;
    source?.close();
    window.clearTimeout(refreshTimer);
    window.clearTimeout(pendingTimer);
    window.clearTimeout(pollTimer);
  };
}
