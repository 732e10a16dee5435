// The module's logs against what the prototype wrote: the real sessions in
// ../shared/real-sessions (SD_SHARED_DIR), read as the pipeline reads them. Without them these
// tests say SKIPPED; with SD_REQUIRE_REAL_SESSIONS=1 (CI) their absence fails.

import { strict as assert } from "node:assert";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { buildMeta, newSessionId, SessionLog } from "../src/logs.js";

// build/test/ -> the repository -> its parent's shared/.
const here = fileURLToPath(new URL(".", import.meta.url));
const shared = resolve(process.env.SD_SHARED_DIR ?? join(here, "../../../../shared"));
const realDir = join(shared, "real-sessions");

/** Every real part of `suffix` (e.g. `_inputs.json`), parsed; `null` when the sessions are absent. */
function realParts(suffix: string): unknown[] | null {
  if (!existsSync(realDir)) {
    const message = `the real sessions are not at ${realDir} (set SD_SHARED_DIR)`;
    if (process.env.SD_REQUIRE_REAL_SESSIONS === "1") assert.fail(`${message}, and SD_REQUIRE_REAL_SESSIONS=1`);
    process.stderr.write(`SKIPPED ${suffix} formats: ${message}\n`);
    return null;
  }
  const parts: unknown[] = [];
  for (const wallet of readdirSync(realDir)) {
    for (const name of readdirSync(join(realDir, wallet))) {
      if (name.endsWith(suffix)) parts.push(JSON.parse(readFileSync(join(realDir, wallet, name), "utf8")));
    }
  }
  assert.ok(parts.length > 0, `no ${suffix} in ${realDir}`);
  return parts;
}

/** `{field: typeof}` of an object, `null` as "null". */
function shape(value: object): Map<string, string> {
  return new Map(
    Object.entries(value).map(([key, v]) => [key, v === null ? "null" : Array.isArray(v) ? "array" : typeof v]),
  );
}

/** Every field of `theirs` is in `ours` with the same type (`null` allowed either way). */
function assertCovers(ours: object, theirs: object, what: string): void {
  const mine = shape(ours);
  for (const [key, type] of shape(theirs)) {
    assert.ok(mine.has(key), `${what}: the prototype writes ${key}, the module does not`);
    const got = mine.get(key);
    if (got !== "null" && type !== "null") assert.equal(got, type, `${what}.${key}`);
  }
}

function sampleLog(): SessionLog {
  const log = new SessionLog(1);
  log.key(100.5, "keydown", "W", false);
  log.key(140.0, "keydown", "w", true);
  log.mouse(150.25, 3, -1, true);
  log.frame(160.0, { pos: [0, 5, 50], yaw: 0.1, speed: 4.2 });
  log.key(900.0, "keyup", "w", false);
  log.rtt(1000, 34);
  return log;
}

test("inputs have the prototype's fields and types", () => {
  const real = realParts("_inputs.json");
  if (!real) return;
  const log = sampleLog();
  const key = log.inputs.find((e) => e.type === "keydown");
  const mouse = log.inputs.find((e) => e.type === "mouse");
  assert.ok(key && mouse);
  for (const events of real as Record<string, unknown>[][]) {
    for (const event of events) {
      assertCovers(event.type === "mouse" ? mouse : key, event, `inputs ${String(event.type)}`);
      if (typeof event.key === "string") assert.equal(event.key, event.key.toLowerCase());
    }
  }
});

test("camera samples have the prototype's fields and types", () => {
  const real = realParts("_camera.json");
  if (!real) return;
  const ours = sampleLog().camera[0];
  for (const samples of real as object[][]) for (const sample of samples) assertCovers(ours, sample, "camera");
});

test("latency and meta have the prototype's fields, and meta adds recordingStartT and timeOrigin", () => {
  const latencies = realParts("_latency.json");
  const metas = realParts("_meta.json");
  if (!latencies || !metas) return;
  const log = sampleLog();
  const latency = log.latency(8027.5);
  for (const theirs of latencies as { rttSamples: object[] }[]) {
    assertCovers(latency, theirs, "latency");
    for (const sample of theirs.rttSamples) assertCovers(latency.rttSamples[0], sample, "rttSamples[]");
  }
  const meta = buildMeta(
    {
      sessionId: newSessionId(1769936388223),
      walletAddress: "Dzse3tYXLgtRJrBHVVUK5ZYbZoCjBee1tK3oSv5RyLyR",
      prompt: "a street",
      scenario: { id: "demo", name: "Demo street", type: "free" },
      startTime: 1769936404672,
      endTime: 1769936465745,
      recordingStartT: 15000.25,
      timeOrigin: 1769936389672.5,
      uploadedAt: new Date(1769936479572),
    },
    log,
    latency,
  );
  for (const theirs of metas as Record<string, unknown>[]) {
    assertCovers(meta, theirs, "meta");
    assert.match(String(theirs.sessionId), /^session_\d{13}_[a-z0-9]{6}$/);
  }
  assert.match(meta.sessionId, /^session_1769936388223_[a-z0-9]{6}$/);
  assert.equal(meta.duration, 61073);
  assert.equal(meta.eventCount, 3);
  assert.equal(meta.recordingStartT, 15000.25);
  assert.equal(meta.timeOrigin, 1769936389672.5);
  assert.deepEqual(meta.latencySummary, { initialLatency: 8027.5, avgRtt: 34 });
});

test("keys without auto-repeat, a lone keyup kept, the mouse only under pointer lock", () => {
  const log = new SessionLog(2);
  log.key(1, "keydown", "A", false);
  log.key(2, "keydown", "a", true); // auto-repeat
  log.key(3, "keydown", "a", false); // a second keydown without a keyup (focus lost between)
  log.key(4, "keyup", "Escape", false); // its keydown went elsewhere
  log.key(5, "keyup", "a", false);
  log.mouse(6, 5, 0, false);
  log.mouse(7, 0, 0, true);
  log.mouse(8, Number.NaN, 1, true);
  log.mouse(9, -2, 1, true);
  assert.deepEqual(log.inputs, [
    { t: 1, type: "keydown", key: "a" },
    { t: 4, type: "keyup", key: "escape" },
    { t: 5, type: "keyup", key: "a" },
    { t: 9, type: "mouse", dx: -2, dy: 1 },
  ]);
  // A camera sample every 2nd frame, with the throttle and command from the keys held.
  log.key(10, "keydown", "w", false);
  const logged = [0, 1, 2, 3].map((i) => log.frame(20 + i, { pos: [i, 0, 0], yaw: 0, speed: 1 }));
  assert.deepEqual(logged, [true, false, true, false]);
  assert.deepEqual(
    log.camera.map((c) => [c.t, c.throttle, c.brake, c.command]),
    [
      [20, 1, 0, 3],
      [22, 1, 0, 3],
    ],
  );
});
