import { describe, expect, it } from "vitest";
import { bars } from "../src/charts";
import { byLabel, meanBy } from "../src/pages/metrics";
import type { Family } from "../src/api";

describe("bars", () => {
  it("scales to the tallest value and fills the width", () => {
    const r = bars([{ label: "a", value: 2 }, { label: "b", value: 4 }], 100, 50, 10);
    expect(r.map((b) => b.h)).toEqual([25, 50]);
    expect(r[1]!.x + r[1]!.w).toBeCloseTo(100);
    expect(r.map((b) => b.y + b.h)).toEqual([50, 50]);
  });
  it("caps bar width and centers the bars", () => {
    const [only] = bars([{ label: "a", value: 1 }], 100, 50, 6, 20);
    expect(only).toMatchObject({ x: 40, w: 20, h: 50 });
  });
  it("draws zeros flat and nothing for no data", () => {
    expect(bars([{ label: "a", value: 0 }], 100, 50).map((b) => b.h)).toEqual([0]);
    expect(bars([], 100, 50)).toEqual([]);
  });
});

describe("metrics series", () => {
  const fams: Family[] = [{ name: "naestro_model_latency_seconds", type: "histogram", help: "", samples: [
    { name: "naestro_model_latency_seconds_sum", labels: { endpoint: "e1" }, value: 3 },
    { name: "naestro_model_latency_seconds_count", labels: { endpoint: "e1" }, value: 2 },
    { name: "naestro_model_latency_seconds_bucket", labels: { endpoint: "e1", le: "1" }, value: 1 }] },
  { name: "naestro_runs", type: "gauge", help: "", samples: [
    { name: "naestro_runs", labels: { status: "passed" }, value: 2 },
    { name: "naestro_runs", labels: { status: "failed" }, value: null }] }];
  it("averages a histogram per label and skips NaN samples", () => {
    expect(meanBy(fams, "naestro_model_latency_seconds", "endpoint")).toEqual([{ label: "e1", value: 1.5 }]);
    expect(byLabel(fams, "naestro_runs", "status")).toEqual([{ label: "passed", value: 2 }]);
  });
});
