/**
 * The session's logs, in the prototype's formats (SPEC section 2), built from what the page
 * reports. Pure: the caller passes every time (`performance.now()` in the page), so the formats
 * are tested without a browser.
 */

/** A key press or release, or a mouse movement under pointer lock. `t` is `performance.now()`. */
export type InputEvent =
  | { t: number; type: "keydown" | "keyup"; key: string }
  | { t: number; type: "mouse"; dx: number; dy: number };

/** Where the camera is, as the game reports it each frame. */
export interface CameraPose {
  pos: [number, number, number];
  /** Radians, three.js convention (0 faces -z). */
  yaw: number;
  /** World units per second. */
  speed: number;
  /** 0 or 1, from W and S. */
  throttle?: number;
  brake?: number;
  /** The yaw step this frame. */
  steer?: number;
  /** 1 = A, 2 = D, 3 = W, 4 = idle (the prototype's codes). */
  command?: number;
}

/** A camera sample as the prototype logs it. */
export interface CameraSample {
  t: number;
  type: "camera";
  pos: [number, number, number];
  yaw: number;
  speed: number;
  throttle: number;
  brake: number;
  steer: number;
  command: number;
}

export interface RttSample {
  t: number;
  rtt: number;
}

export interface LatencyLog {
  /** ms from the session's start to the first frame of the recorded stream. */
  initialLatency: number | null;
  /** Mean of the RTT samples (ms), `null` without any. */
  avgRtt: number | null;
  rttSamples: RttSample[];
}

export interface Scenario {
  id: string;
  name: string;
  type: string;
}

export interface Meta {
  sessionId: string;
  walletAddress: string;
  prompt: string;
  /** ms recorded. */
  duration: number;
  eventCount: number;
  /** `Date.now()` when the recorder started; `null` if it never did. */
  startTime: number | null;
  endTime: number | null;
  scenario?: Scenario;
  latencySummary: { initialLatency: number | null; avgRtt: number | null };
  uploadedAt: string;
  /** `performance.now()` just before `MediaRecorder.start()` ran. */
  recordingStartT: number | null;
  /** `performance.timeOrigin`: the epoch ms of the page clock's zero. */
  timeOrigin: number;
}

/** Keys are `KeyboardEvent.key` lower-cased, as the prototype logs them. */
export function keyName(key: string): string {
  return key.toLowerCase();
}

/**
 * A session id as the prototype makes them: `session_<Date.now()>_<6 of [a-z0-9]>`.
 * `random` returns numbers in [0, 1).
 */
export function newSessionId(nowEpochMs: number, random: () => number = Math.random): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let suffix = "";
  for (let i = 0; i < 6; i++) {
    suffix += alphabet[Math.floor(random() * alphabet.length) % alphabet.length];
  }
  return `session_${Math.floor(nowEpochMs)}_${suffix}`;
}

/** The prototype's command code for the keys held. */
export function commandOf(held: ReadonlySet<string>): number {
  if (held.has("a")) return 1;
  if (held.has("d")) return 2;
  if (held.has("w")) return 3;
  return 4;
}

/**
 * Collects the logs of one session. Keys are logged without auto-repeat, a keyup without its
 * keydown is logged too (the page may have lost focus), mouse deltas only under pointer lock;
 * a camera sample every `cameraEvery`-th animation frame: 10 in a session, as the prototype, since
 * ALIGN places the animation frames between two samples by that count (tests log more often).
 */
export class SessionLog {
  readonly inputs: InputEvent[] = [];
  readonly camera: CameraSample[] = [];
  readonly rttSamples: RttSample[] = [];
  /** The keys held now, lower-cased. */
  readonly held = new Set<string>();
  private frames = 0;

  constructor(readonly cameraEvery = 10) {}

  key(t: number, type: "keydown" | "keyup", key: string, repeat: boolean): void {
    if (repeat) return;
    const name = keyName(key);
    if (type === "keydown") {
      if (this.held.has(name)) return;
      this.held.add(name);
    } else {
      this.held.delete(name);
    }
    this.inputs.push({ t, type, key: name });
  }

  mouse(t: number, dx: number, dy: number, pointerLocked: boolean): void {
    if (!pointerLocked || !Number.isFinite(dx) || !Number.isFinite(dy)) return;
    if (dx === 0 && dy === 0) return;
    this.inputs.push({ t, type: "mouse", dx, dy });
  }

  /** One rendered frame; answers whether a camera sample was logged. */
  frame(t: number, pose: CameraPose): boolean {
    const log = this.frames % this.cameraEvery === 0;
    this.frames += 1;
    if (!log) return false;
    this.camera.push({
      t,
      type: "camera",
      pos: [pose.pos[0], pose.pos[1], pose.pos[2]],
      yaw: pose.yaw,
      speed: pose.speed,
      throttle: pose.throttle ?? (this.held.has("w") ? 1 : 0),
      brake: pose.brake ?? (this.held.has("s") ? 1 : 0),
      steer: pose.steer ?? 0,
      command: pose.command ?? commandOf(this.held),
    });
    return true;
  }

  rtt(t: number, rttMs: number): void {
    if (Number.isFinite(rttMs) && rttMs >= 0) this.rttSamples.push({ t, rtt: rttMs });
  }

  latency(initialLatency: number | null): LatencyLog {
    const avg =
      this.rttSamples.length === 0
        ? null
        : this.rttSamples.reduce((sum, s) => sum + s.rtt, 0) / this.rttSamples.length;
    return { initialLatency, avgRtt: avg, rttSamples: [...this.rttSamples] };
  }
}

/** What [`buildMeta`] needs besides the logs. */
export interface MetaFacts {
  sessionId: string;
  walletAddress: string;
  prompt: string;
  scenario?: Scenario;
  startTime: number | null;
  endTime: number | null;
  recordingStartT: number | null;
  timeOrigin: number;
  uploadedAt: Date;
}

export function buildMeta(facts: MetaFacts, log: SessionLog, latency: LatencyLog): Meta {
  const duration =
    facts.startTime !== null && facts.endTime !== null
      ? Math.max(0, facts.endTime - facts.startTime)
      : 0;
  const meta: Meta = {
    sessionId: facts.sessionId,
    walletAddress: facts.walletAddress,
    prompt: facts.prompt,
    duration,
    eventCount: log.inputs.length,
    startTime: facts.startTime,
    endTime: facts.endTime,
    latencySummary: { initialLatency: latency.initialLatency, avgRtt: latency.avgRtt },
    uploadedAt: facts.uploadedAt.toISOString(),
    recordingStartT: facts.recordingStartT,
    timeOrigin: facts.timeOrigin,
  };
  if (facts.scenario) meta.scenario = facts.scenario;
  return meta;
}
