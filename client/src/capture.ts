/**
 * One capture session in the page: the stream recorded with MediaRecorder (VP8, 2.5 Mbit/s, as
 * the prototype), inputs from the page's keyboard and mouse, camera poses from the game, RTT
 * samples from an optional `RTCPeerConnection`; then the five parts, and their upload.
 *
 * What ALIGN needs and the prototype never wrote: `recordingStartT` (`performance.now()` taken
 * just before `MediaRecorder.start()`: the first recorded frame is the first picture drawn after
 * it, within a frame, while the `start` event fires 180-340 ms later) and `timeOrigin`.
 */

import { buildMeta, newSessionId, SessionLog, type CameraPose, type Scenario } from "./logs.js";
import { uploadBundle, type Parts, type UploadOptions, type UploadResult, type WalletSigner } from "./upload.js";

export interface CaptureOptions {
  /** What is recorded: the AI stream in production, a canvas's `captureStream()` in the demo. */
  stream: MediaStream;
  signer: WalletSigner;
  /** The game's camera now, called once per animation frame. */
  cameraPose: () => CameraPose;
  peer?: RTCPeerConnection;
  prompt?: string;
  scenario?: Scenario;
  /** Where keys and the mouse are listened to (default: `window`). */
  target?: EventTarget;
  /** Recording stops by itself after this (default 60 s). */
  maxDurationMs?: number;
  /** How often RTT is sampled (default 2 s). */
  rttEveryMs?: number;
  /** Default `video/webm;codecs=vp8`. */
  mimeType?: string;
  videoBitsPerSecond?: number;
}

/** What the page sees of a session's state. */
export type CaptureState = "idle" | "recording" | "stopped" | "uploading" | "uploaded" | "failed";

export class CaptureSession {
  readonly log: SessionLog;
  readonly sessionId: string;
  state: CaptureState = "idle";
  /** `performance.now()` just before `MediaRecorder.start()`. */
  recordingStartT: number | null = null;
  /** `performance.now()` of the recorder's `start` event (the capture path's own delay after it). */
  startEventT: number | null = null;
  startTime: number | null = null;
  endTime: number | null = null;
  private readonly createdT = performance.now();
  private recorder: MediaRecorder | null = null;
  private chunks: Blob[] = [];
  private stopped: Promise<Blob> | null = null;
  private ended: ((parts: Parts) => void) | null = null;
  /** Resolves with the five parts when recording stops, by [`stop`] or at the time limit. */
  readonly finished: Promise<Parts> = new Promise((resolve) => (this.ended = resolve));
  private cleanups: (() => void)[] = [];

  constructor(readonly options: CaptureOptions) {
    this.log = new SessionLog();
    this.sessionId = newSessionId(Date.now());
  }

  /** Starts listening and recording; resolves once the recorder has started. */
  async start(): Promise<void> {
    if (this.state !== "idle") throw new Error(`cannot start a session that is ${this.state}`);
    const target = this.options.target ?? window;
    const onKey = (event: Event) => {
      const key = event as KeyboardEvent;
      this.log.key(performance.now(), key.type === "keydown" ? "keydown" : "keyup", key.key, key.repeat);
    };
    const onMouse = (event: Event) => {
      const mouse = event as MouseEvent;
      this.log.mouse(performance.now(), mouse.movementX, mouse.movementY, document.pointerLockElement !== null);
    };
    for (const [name, handler] of [
      ["keydown", onKey],
      ["keyup", onKey],
      ["mousemove", onMouse],
    ] as const) {
      target.addEventListener(name, handler);
      this.cleanups.push(() => target.removeEventListener(name, handler));
    }
    let frame = 0;
    const tick = () => {
      this.log.frame(performance.now(), this.options.cameraPose());
      frame = requestAnimationFrame(tick);
    };
    frame = requestAnimationFrame(tick);
    this.cleanups.push(() => cancelAnimationFrame(frame));
    if (this.options.peer) {
      const peer = this.options.peer;
      const timer = setInterval(() => void this.sampleRtt(peer), this.options.rttEveryMs ?? 2000);
      this.cleanups.push(() => clearInterval(timer));
    }

    const recorder = new MediaRecorder(this.options.stream, {
      mimeType: this.options.mimeType ?? "video/webm;codecs=vp8",
      videoBitsPerSecond: this.options.videoBitsPerSecond ?? 2_500_000,
    });
    this.recorder = recorder;
    recorder.ondataavailable = (event) => {
      if (event.data.size > 0) this.chunks.push(event.data);
    };
    this.stopped = new Promise((resolve, reject) => {
      recorder.onstop = () => resolve(new Blob(this.chunks, { type: "video/webm" }));
      recorder.onerror = (event) => reject(new Error(`the recorder failed: ${String((event as ErrorEvent).message ?? event.type)}`));
    });
    const started = new Promise<void>((resolve) => {
      recorder.onstart = () => {
        this.startEventT = performance.now();
        resolve();
      };
    });
    this.recordingStartT = performance.now();
    this.startTime = Date.now();
    recorder.start(1000);
    this.state = "recording";
    const limit = setTimeout(() => void this.stop(), this.options.maxDurationMs ?? 60_000);
    this.cleanups.push(() => clearTimeout(limit));
    await started;
  }

  /** Stops recording and listening; resolves with the five parts. */
  async stop(): Promise<Parts> {
    if (this.state === "recording" && this.recorder) {
      this.endTime = Date.now();
      this.recorder.stop();
      this.state = "stopped";
      for (const cleanup of this.cleanups.splice(0)) cleanup();
    }
    if (!this.stopped) throw new Error("the session never started");
    const video = await this.stopped;
    const parts = this.parts(video);
    this.ended?.(parts);
    this.ended = null;
    return parts;
  }

  /** Stops (if recording) and uploads; `state` follows. */
  async upload(options: Omit<UploadOptions, "signer" | "sessionId">): Promise<UploadResult> {
    if (this.state !== "recording" && this.state !== "stopped") {
      throw new Error(`cannot upload a session that is ${this.state}`);
    }
    const parts = await this.stop();
    this.state = "uploading";
    try {
      const result = await uploadBundle(parts, { ...options, signer: this.options.signer, sessionId: this.sessionId });
      this.state = "uploaded";
      return result;
    } catch (err) {
      this.state = "failed";
      throw err;
    }
  }

  private parts(video: Blob): Parts {
    const json = (value: unknown) => new Blob([JSON.stringify(value)], { type: "application/json" });
    const initial = this.recordingStartT === null ? null : this.recordingStartT - this.createdT;
    const latency = this.log.latency(initial);
    const meta = buildMeta(
      {
        sessionId: this.sessionId,
        walletAddress: this.options.signer.publicKey,
        prompt: this.options.prompt ?? "",
        scenario: this.options.scenario,
        startTime: this.startTime,
        endTime: this.endTime,
        recordingStartT: this.recordingStartT,
        timeOrigin: performance.timeOrigin,
        uploadedAt: new Date(),
      },
      this.log,
      latency,
    );
    return {
      video,
      inputs: json(this.log.inputs),
      camera: json(this.log.camera),
      latency: json(latency),
      meta: json(meta),
    };
  }

  /** One RTT sample: the candidate pair the transport uses (else the first nominated one). */
  private async sampleRtt(peer: RTCPeerConnection): Promise<void> {
    const stats = await peer.getStats().catch(() => null);
    if (!stats) return;
    const reports = [...stats.values()] as { type: string; id: string }[];
    const transport = reports.find((r) => r.type === "transport") as { selectedCandidatePairId?: string } | undefined;
    const pairs = reports.filter((r) => r.type === "candidate-pair") as RTCIceCandidatePairStats[];
    const pair =
      pairs.find((p) => p.id === transport?.selectedCandidatePairId) ??
      pairs.find((p) => p.nominated && p.state === "succeeded");
    if (pair && typeof pair.currentRoundTripTime === "number") {
      this.log.rtt(performance.now(), pair.currentRoundTripTime * 1000);
    }
  }
}
