// The Studio API (studio/api.py), with relative URLs: the page works wherever the app is mounted.

import type { RunEvent } from "./reducer";

export interface RunSummary {
  run_id: string; goal: string; status: string; created: string; mode: string; served: boolean; live: boolean;
  cost_usd: number; tokens: number; duration_s: number; tasks: number; tasks_passed: number;
  // a run `naestro worker`s execute: "running on HOST:PID", "queued again (HOST:PID stopped)" ... (else = status)
  status_text: string; worker: string | null; remote: boolean;
}

export interface PlanTask {
  id: string; role: string; description: string; deps?: string[];
  accept?: { kind: string; [k: string]: unknown }[]; action?: { tool: string; arguments: unknown };
}

export interface Plan { goal: string; tasks: PlanTask[] }

export interface RunDetail extends RunSummary {
  workspace: string; error: string; plan_source: string; phase: number; head: string | null;
  plan: Plan | null; events: RunEvent[]; calls: RunEvent[]; policy: RunEvent[]; verdicts: RunEvent[];
  report: string | null; running_here: boolean;
}

export interface Pending {
  id: string; action: string; task: string; role: string; risk: string; reasons: string[];
  arguments: Record<string, unknown>;
}

export interface HistoryEntry {
  checkpoint_id: string; parent_id: string | null; phase: number; step: number; node: string; next: string[];
  created: string; tokens: number; cost_usd: number; snapshot: string | null; head: boolean;
}

export interface WorkspaceFile { path: string; size: number; preview: string | null }

export interface Problem { pointer: string; message: string }

export interface Sample { name: string; labels: Record<string, string>; value: number | null }
export interface Family { name: string; type: string; help: string; samples: Sample[] }

export interface RouterArm {
  kind: string; endpoint: string; routed: number; spill_pct: number | null; outcomes: number;
  win_rate: number | null; posterior_mean: number; usd_per_success: number | null;
}

/** One remembered episode (naestro/memory/timeline.py) or search hit (naestro/memory/records.py MemoryHit). */
export interface MemoryEpisode {
  key: string; run_id: string; kind: string; slice: string; outcome: string; valid_at: string; text: string;
  score?: number;
}

export interface MemorySkill { id: string; name: string; support: number; success_rate: number; keywords: string[] }

export interface MemoryTimeline {
  enabled_for_runs: boolean; episodes: MemoryEpisode[]; counts: Record<string, number>; runs: string[];
  skills: MemorySkill[];
}

export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly problems: Problem[] = []) {
    super(message);
  }
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(path, { credentials: "same-origin", ...init,
    headers: init?.body ? { "content-type": "application/json" } : undefined });
  const text = await res.text();
  const body: unknown = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const b = (body ?? {}) as { error?: string; problems?: Problem[] };
    throw new ApiError(b.error ?? `HTTP ${res.status}`, res.status, b.problems ?? []);
  }
  return body as T;
}

const post = <T>(path: string, body: unknown): Promise<T> =>
  call<T>(path, { method: "POST", body: JSON.stringify(body) });
const enc = encodeURIComponent;

export const api = {
  info: () => call<{ actions: boolean; home: string }>("naestro/info"),
  runs: () => call<RunSummary[]>("naestro/runs"),
  run: (id: string) => call<RunDetail>(`naestro/runs/${enc(id)}`),
  pending: (id: string) => call<Pending[]>(`naestro/runs/${enc(id)}/pending`),
  consent: (id: string, body: { consent_id?: string; approve: boolean; arguments?: unknown; remember?: boolean }) =>
    post<{ status: string }>(`naestro/runs/${enc(id)}/consent`, body),
  resume: (id: string) => post<{ status: string }>(`naestro/runs/${enc(id)}/resume`, {}),
  files: (id: string) => call<WorkspaceFile[]>(`naestro/runs/${enc(id)}/files`),
  history: (id: string) => call<HistoryEntry[]>(`naestro/runs/${enc(id)}/history`),
  rollback: (id: string, to: string) => post<HistoryEntry>(`naestro/runs/${enc(id)}/rollback`, { to }),
  fork: (id: string, at: string) => post<{ run_id: string }>(`naestro/runs/${enc(id)}/fork`, { at }),
  plan: (goal: string) => post<{ plan: Plan; source: string; rejected: string[][] }>("naestro/plan", { goal }),
  validate: (plan: string) => post<{ valid: boolean; problems: Problem[] }>("naestro/validate", { plan }),
  start: (body: { goal: string; plan?: string; mode: string; approve: string[] }) =>
    post<{ run_id: string }>("naestro/runs", body),
  metrics: () => call<Family[]>("naestro/metrics"),
  router: () => call<RouterArm[]>("naestro/metrics/router"),
  memoryTimeline: (kind?: string, limit = 200) =>
    call<MemoryTimeline>(`naestro/memory/timeline?limit=${limit}${kind ? `&kind=${enc(kind)}` : ""}`),
  memorySearch: (q: string, limit = 10) => call<MemoryEpisode[]>(`naestro/memory/search?q=${enc(q)}&limit=${limit}`),
  eventsUrl: (id: string, after: number) => `naestro/runs/${enc(id)}/events?after=${after}`,
};
