import { describe, expect, it } from "vitest";
import { needsPolling, statusLabel } from "../src/status";

describe("statusLabel", () => {
  it("says where a worker-executed run stands while the stream agrees with the last read", () => {
    const run = { status: "running", status_text: "running on box-2:4242", remote: true };
    expect(statusLabel("running", run)).toBe("running on box-2:4242");
    expect(statusLabel("queued", { status: "queued", status_text: "queued again (box-2:4242 stopped)" }))
      .toBe("queued again (box-2:4242 stopped)");
  });

  it("shows the live status once the stream moved past the last read, and local runs as they are", () => {
    expect(statusLabel("waiting", { status: "running", status_text: "running on box-2:4242" })).toBe("waiting");
    expect(statusLabel("passed", { status: "passed", status_text: "passed" })).toBe("passed");
    expect(statusLabel("interrupted", { status: "interrupted" })).toBe("interrupted");
  });
});

describe("needsPolling", () => {
  it("polls only remote runs that are queued or driven (their worker can vanish without an event)", () => {
    expect(needsPolling({ status: "running", remote: true })).toBe(true);
    expect(needsPolling({ status: "queued", remote: true })).toBe(true);
    expect(needsPolling({ status: "waiting", remote: true })).toBe(false);
    expect(needsPolling({ status: "passed", remote: true })).toBe(false);
    expect(needsPolling({ status: "running", remote: false })).toBe(false);
  });
});
