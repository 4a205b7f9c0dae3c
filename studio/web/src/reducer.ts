// Folds a run's events (events.jsonl, as the API and the SSE stream deliver them) into what the run view shows:
// each task's status, attempts and tokens, the run's status, and counters. Pure and deterministic: the page
// applies the stored events at load and every live event after, through the same function.

export type TaskStatus =
  | "pending" | "running" | "checking" | "waiting" | "passed" | "failed" | "skipped" | "review";

export interface TaskView {
  status: TaskStatus;
  attempts: number;
  tokens: number;
  model: string;
  action?: string; // what it waits for consent on
}

export interface RunView {
  status: string;
  tasks: Record<string, TaskView>;
  seen: number; // events folded so far (the SSE position to resume from)
  modelCalls: number;
  toolCalls: number;
  denials: number;
  tokens: number;
  costUsd: number;
}

export type RunEvent = { event: string; [field: string]: unknown };

const FINAL: ReadonlySet<string> = new Set(["passed", "failed", "skipped"]);

export function initial(taskIds: readonly string[], status = "planning"): RunView {
  const tasks: Record<string, TaskView> = {};
  for (const id of taskIds) tasks[id] = { status: "pending", attempts: 0, tokens: 0, model: "" };
  return { status, tasks, seen: 0, modelCalls: 0, toolCalls: 0, denials: 0, tokens: 0, costUsd: 0 };
}

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
const str = (v: unknown): string => (typeof v === "string" ? v : "");

function withTask(view: RunView, id: string, change: Partial<TaskView>): RunView {
  const prev = view.tasks[id] ?? { status: "pending" as const, attempts: 0, tokens: 0, model: "" };
  return { ...view, tasks: { ...view.tasks, [id]: { ...prev, ...change } } };
}

export function reduce(view: RunView, ev: RunEvent): RunView {
  const v: RunView = { ...view, seen: view.seen + 1 };
  const task = str(ev["task"]);
  switch (ev.event) {
    case "planned":
    case "replanned": {
      // a re-plan starts a new task map: the tasks it lists begin pending (the old ones keep their outcome)
      const ids = Array.isArray(ev["tasks"]) ? ev["tasks"].map(String) : [];
      let next: RunView = { ...v, status: "running" };
      for (const id of ids) next = withTask(next, id, { status: "pending", attempts: 0 });
      return next;
    }
    case "run_started":
    case "run_resumed":
      return { ...v, status: "running" };
    case "task_started":
      return withTask(v, task, { status: "running", attempts: num(ev["attempt"]) || 1, model: str(ev["model"]) });
    case "task_ran":
      return withTask(v, task, { status: "checking", tokens: num(ev["tokens"]) });
    case "consent_requested":
    case "waiting_for_consent":
      return withTask({ ...v, status: ev.event === "waiting_for_consent" ? "waiting" : v.status }, task,
        { status: "waiting", action: str(ev["action"]) });
    case "consent_given":
    case "consent_refused":
      return withTask({ ...v, status: "running" }, task, { status: "running", action: undefined });
    case "task_finished": {
      const s = str(ev["status"]);
      return withTask(v, task, {
        status: (FINAL.has(s) || s === "review" ? s : "failed") as TaskStatus,
        attempts: num(ev["attempts"]) || v.tasks[task]?.attempts || 1, tokens: num(ev["tokens"]),
      });
    }
    case "task_skipped":
      return withTask(v, task, { status: "skipped" });
    case "model_call":
      return { ...v, modelCalls: v.modelCalls + 1, costUsd: v.costUsd + num(ev["cost_usd"]),
        tokens: v.tokens + num(ev["prompt_tokens"]) + num(ev["completion_tokens"]) };
    case "tool_call":
      return { ...v, toolCalls: v.toolCalls + 1 };
    case "tool_denied":
      return { ...v, denials: v.denials + 1 };
    case "run_finished":
      return { ...v, status: str(ev["status"]) || v.status };
    default:
      return v;
  }
}

export function fold(view: RunView, events: readonly RunEvent[]): RunView {
  return events.reduce(reduce, view);
}

/** The color class of a task status in the DAG (and the legend). */
export function statusClass(s: TaskStatus): string {
  return `st-${s}`;
}
