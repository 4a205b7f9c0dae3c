// History timeline: every checkpoint of the run (oldest first) with its step, node, tokens and cost; roll back,
// replay (roll back + resume) or fork at each checkpoint that has a workspace snapshot; the workspace files, so a
// rollback's effect shows.

import { api, type HistoryEntry } from "../api";
import { fmtUsd, h, toast } from "../dom";

export function historyPage(main: HTMLElement, runId: string): () => void {
  const list = h("ol", { class: "timeline", "aria-label": "Checkpoints, oldest first" });
  const files = h("ul", { class: "files", "aria-label": "Workspace files" });
  const note = h("p", { class: "muted" }, "loading…");
  const resume = h("button", { type: "button", hidden: true, onclick: async () => {
    try {
      await api.resume(runId);
      location.hash = `#/runs/${encodeURIComponent(runId)}`;
    } catch (e) { toast((e as Error).message); }
  } }, "Resume from the head");
  main.append(h("h1", {}, "History"), h("p", {}, h("a", { href: `#/runs/${encodeURIComponent(runId)}` }, `← ${runId}`)),
    note, resume, h("div", { class: "split" },
      h("section", { "aria-label": "Timeline" }, h("h2", {}, "Checkpoints"), list),
      h("section", { "aria-label": "Files" }, h("h2", {}, "Workspace files"), files)));

  const entry = (e: HistoryEntry): HTMLLIElement => {
    const label = `step ${e.step} · ${e.node}${e.next.length ? ` → ${e.next.join(", ")}` : " (end)"}`;
    return h("li", { class: e.head ? "head" : "" },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", {}, h("strong", {}, label), e.head ? h("span", { class: "badge b-head" }, "head") : null,
        h("span", { class: "muted" }, ` phase ${e.phase} · ${e.tokens} tokens · ${fmtUsd(e.cost_usd)} · ` +
          `${e.created.slice(11, 19)} · ${e.checkpoint_id.slice(-8)}`)),
      e.snapshot && !e.head ? h("button", { type: "button", "data-next": e.next.join(","), "data-step": e.step,
        "aria-label": `Roll back to step ${e.step} (${label})`, onclick: async () => {
          if (!window.confirm(`Roll back state and files to step ${e.step}?`)) return;
          try {
            await api.rollback(runId, e.checkpoint_id);
            toast(`Rolled back to step ${e.step}; resume to continue from there.`);
            void load();
          } catch (err) { toast((err as Error).message); }
        } }, "Roll back here") : null,
      e.snapshot && !e.head ? h("button", { type: "button", "aria-label": `Replay from step ${e.step} (${label})`,
        onclick: async () => {
          if (!window.confirm(`Replay from step ${e.step}: roll back state and files, then run again?`)) return;
          try {
            await api.rollback(runId, e.checkpoint_id);
            await api.resume(runId);
            location.hash = `#/runs/${encodeURIComponent(runId)}`;
          } catch (err) { toast((err as Error).message); }
        } }, "Replay") : null,
      e.snapshot ? h("button", { type: "button", "aria-label": `Fork a new run at step ${e.step} (${label})`,
        onclick: async () => {
          try {
            const fork = await api.fork(runId, e.checkpoint_id);
            toast(`Forked as ${fork.run_id}: resume it from its page.`);
            location.hash = `#/runs/${encodeURIComponent(fork.run_id)}`;
          } catch (err) { toast((err as Error).message); }
        } }, "Fork") : null);
  };

  const load = async (): Promise<void> => {
    try {
      const [entries, ws, run] = await Promise.all([api.history(runId), api.files(runId), api.run(runId)]);
      list.replaceChildren(...entries.map(entry));
      files.replaceChildren(...ws.map((f) => h("li", { "data-file": f.path }, h("code", {}, f.path),
        h("span", { class: "muted" }, ` ${f.size} B`), f.preview !== null ? h("pre", {}, f.preview) : null)));
      if (!ws.length) files.append(h("li", { class: "muted" }, "(empty)"));
      note.textContent = `${entries.length} checkpoint(s); run status: ${run.status}`;
      resume.hidden = !["rolled_back", "interrupted", "paused"].includes(run.status) || run.running_here;
    } catch (e) {
      note.textContent = `Could not load the history: ${(e as Error).message}`;
    }
  };
  void load();
  return () => undefined;
}
