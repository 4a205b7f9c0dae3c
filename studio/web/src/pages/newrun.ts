// New run: goal → plan preview (the planner's plan, validated, drawn as a DAG, editable as JSON) → run.

import { api, ApiError, type Plan, type Problem } from "../api";
import { dagSvg } from "../dag";
import { h } from "../dom";
import { initial } from "../reducer";

export function newRunPage(main: HTMLElement): () => void {
  const goal = h("textarea", { id: "goal", rows: 3, required: true, placeholder: "What should be done?" });
  const mode = h("select", { id: "mode" }, ...["copilot", "auto", "guide"].map((m) => h("option", { value: m }, m)));
  const approve = h("input", { id: "approve", type: "text", placeholder: "e.g. exec.run fs.write:src" });
  const planText = h("textarea", { id: "plan", rows: 16, spellcheck: "false", class: "code" });
  const preview = h("div", { class: "dag-wrap" });
  const problems = h("ul", { class: "problems", role: "alert", "aria-label": "Plan problems" });
  const status = h("p", { class: "muted", role: "status" });
  const planBox = h("section", { "aria-label": "Plan preview", hidden: true },
    h("h2", {}, "Plan preview"), preview,
    h("label", { for: "plan" }, "Plan JSON (edit it; it is validated again before the run starts)"), planText,
    problems);
  const busy = (on: boolean): void => {
    for (const b of main.querySelectorAll<HTMLButtonElement>("button")) b.disabled = on;
  };
  const showProblems = (list: Problem[]): void => {
    problems.replaceChildren(...list.map((p) => h("li", {}, h("code", {}, p.pointer || "/"), ` ${p.message}`)));
  };
  const draw = (plan: Plan): void => {
    preview.replaceChildren(dagSvg(plan, initial(plan.tasks.map((t) => t.id), "preview")));
  };

  const doPreview = async (): Promise<void> => {
    if (!goal.value.trim()) { status.textContent = "Give a goal first."; goal.focus(); return; }
    busy(true);
    status.textContent = "Planning (the model may take a while)…";
    try {
      const out = await api.plan(goal.value);
      planText.value = JSON.stringify(out.plan, null, 2);
      planBox.hidden = false;
      draw(out.plan);
      showProblems([]);
      status.textContent = `Plan from ${out.source}: ${out.plan.tasks.length} task(s), valid` +
        (out.rejected.length ? ` (${out.rejected.length} rejected attempt(s) before it)` : "") + ".";
    } catch (e) {
      status.textContent = `Planning failed: ${(e as Error).message}`;
    } finally { busy(false); }
  };

  const doValidate = async (): Promise<boolean> => {
    try {
      const out = await api.validate(planText.value);
      showProblems(out.problems);
      if (out.valid) draw(JSON.parse(planText.value) as Plan);
      status.textContent = out.valid ? "The plan is valid." : `${out.problems.length} problem(s) in the plan.`;
      return out.valid;
    } catch (e) {
      status.textContent = (e as Error).message;
      return false;
    }
  };

  const doRun = async (): Promise<void> => {
    busy(true);
    try {
      if (!planBox.hidden && !(await doValidate())) return;
      status.textContent = "Starting the run (tools and models start on the first run)…";
      const { run_id } = await api.start({ goal: goal.value, mode: mode.value,
        approve: approve.value.split(/\s+/).filter(Boolean), ...(planBox.hidden ? {} : { plan: planText.value }) });
      location.hash = `#/runs/${encodeURIComponent(run_id)}`;
    } catch (e) {
      if (e instanceof ApiError) showProblems(e.problems);
      status.textContent = `Not started: ${(e as Error).message}`;
    } finally { busy(false); }
  };

  main.append(h("h1", {}, "New run"),
    h("form", { class: "form", onsubmit: (ev: Event) => { ev.preventDefault(); void doPreview(); } },
      h("label", { for: "goal" }, "Goal"), goal,
      h("div", { class: "row" },
        h("span", {}, h("label", { for: "mode" }, "Mode"), mode),
        h("span", { class: "grow" }, h("label", { for: "approve" }, "Pre-approved scopes (space-separated)"),
          approve)),
      h("div", { class: "buttons" },
        h("button", { type: "submit", class: "ok" }, "Preview plan"),
        h("button", { type: "button", onclick: () => void doValidate() }, "Validate"),
        h("button", { type: "button", onclick: () => void doRun() }, "Run")),
      status),
    planBox);
  goal.focus();
  return () => undefined;
}
