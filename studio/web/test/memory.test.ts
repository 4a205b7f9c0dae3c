import { describe, expect, it } from "vitest";
import { byDay, tally } from "../src/pages/memory";
import type { MemoryEpisode } from "../src/api";

const ep = (key: string, validAt: string): MemoryEpisode => ({
  key, run_id: key.split("/")[0] ?? key, kind: "task", slice: "coder", outcome: "failed", valid_at: validAt, text: key,
});

describe("memory timeline", () => {
  it("groups episodes by day and keeps the order it was given (newest first)", () => {
    const days = byDay([ep("r3/task/0", "2026-12-02T09:00:00+00:00"), ep("r2/task/0", "2026-12-01T18:30:00+00:00"),
      ep("r1/task/1", "2026-12-01T08:00:00+00:00"), ep("r1/task/0", "2026-11-30T23:59:00+00:00")]);
    expect(days.map(([day, eps]) => [day, eps.map((e) => e.key)])).toEqual([
      ["2026-12-02", ["r3/task/0"]], ["2026-12-01", ["r2/task/0", "r1/task/1"]], ["2026-11-30", ["r1/task/0"]]]);
    expect(byDay([])).toEqual([]);
  });

  it("tallies kind:outcome counts per kind, kinds in timeline order, outcomes most first", () => {
    expect(tally({ "task:passed": 1, "run:failed": 1, "task:failed": 2, "denial:denied": 3, "odd": 1 })).toEqual([
      { kind: "run", total: 1, detail: "1 failed" },
      { kind: "task", total: 3, detail: "2 failed · 1 passed" },
      { kind: "denial", total: 3, detail: "3 denied" },
      { kind: "odd", total: 1, detail: "1" },
    ]);
  });
});
