import { describe, expect, it } from "vitest";
import { fold, initial, reduce, type RunEvent } from "../src/reducer";

const ev = (event: string, fields: Record<string, unknown> = {}): RunEvent => ({ event, ...fields });

// the events of a real two-task run (tests/studio/scripted.py's plan), in the order the runtime writes them
const RUN: RunEvent[] = [
  ev("run_started", { goal: "g" }), ev("planned", { tasks: ["greet", "note"] }),
  ev("task_started", { task: "greet", attempt: 1, model: "scripted" }),
  ev("model_call", { task: "greet", prompt_tokens: 10, completion_tokens: 5, cost_usd: 0.001 }),
  ev("tool_call", { task: "greet", tool: "fs.write", ok: true }),
  ev("task_ran", { task: "greet", status: "ran", tokens: 15 }),
  ev("task_finished", { task: "greet", status: "passed", attempts: 1, tokens: 15 }),
  ev("task_started", { task: "note", attempt: 1 }),
  ev("consent_requested", { task: "note", action: "exec.run" }),
  ev("waiting_for_consent", { task: "note", action: "exec.run" }),
];

describe("reduce", () => {
  it("follows a run to a consent request", () => {
    const v = fold(initial(["greet", "note"]), RUN);
    expect(v.status).toBe("waiting");
    expect(v.tasks["greet"]).toMatchObject({ status: "passed", attempts: 1, tokens: 15, model: "scripted" });
    expect(v.tasks["note"]).toMatchObject({ status: "waiting", action: "exec.run" });
    expect(v).toMatchObject({ seen: RUN.length, modelCalls: 1, toolCalls: 1, tokens: 15, costUsd: 0.001 });
  });

  it("turns the task green after consent and the run passed at its end", () => {
    const v = fold(fold(initial([]), RUN), [
      ev("run_resumed"), ev("consent_given", { task: "note", action: "exec.run", by: "ann" }),
      ev("task_finished", { task: "note", status: "passed", attempts: 1 }), ev("run_finished", { status: "passed" })]);
    expect(v.tasks["note"]).toMatchObject({ status: "passed", action: undefined });
    expect(v.status).toBe("passed");
  });

  it("marks denials, skips and failures", () => {
    const v = fold(initial(["a", "b"]), [
      ev("task_started", { task: "a" }), ev("tool_denied", { task: "a", tool: "web.fetch" }),
      ev("task_finished", { task: "a", status: "failed", attempts: 3 }), ev("task_skipped", { task: "b" }),
      ev("run_finished", { status: "failed" })]);
    expect(v.tasks["a"]).toMatchObject({ status: "failed", attempts: 3 });
    expect(v.tasks["b"]!.status).toBe("skipped");
    expect(v).toMatchObject({ denials: 1, status: "failed" });
  });

  it("starts a re-plan's tasks pending and keeps earlier outcomes", () => {
    const v = fold(initial(["a"]), [ev("task_finished", { task: "a", status: "failed" }),
      ev("replanned", { phase: 1, tasks: ["a2"] })]);
    expect(v.tasks["a"]!.status).toBe("failed");
    expect(v.tasks["a2"]!.status).toBe("pending");
  });

  it("is pure: folding never changes its input, unknown events only advance the position", () => {
    const start = initial(["x"]);
    const frozen = JSON.stringify(start);
    const next = reduce(start, ev("something_new", { task: "x" }));
    expect(JSON.stringify(start)).toBe(frozen);
    expect(next.seen).toBe(1);
    expect(next.tasks).toEqual(start.tasks);
  });

  it("reads an unknown final status as failed rather than passed", () => {
    const v = reduce(initial(["a"]), ev("task_finished", { task: "a", status: "weird" }));
    expect(v.tasks["a"]!.status).toBe("failed");
  });
});
