/**
 * The capture demo: a boulevard between city blocks in three.js, driven with WASD (and the mouse
 * under pointer lock). The view shows the street as it was `?lag=` ms earlier, standing in for the
 * model's stream, and that view is what is recorded (`captureStream`). A test keypair signs the
 * upload (`?wrongKey` signs with another key: the API must refuse).
 *
 * Query: `api` (default: this host, port 8080), `lag` (ms, default 0), `seconds` (default 60),
 * `width` (the view's, default 1280), `scale` (the scene's resolution against the view's, default
 * 0.5), `stamp` (each picture's index drawn into it, for tests), `peer` (RTT sampled from a
 * loopback WebRTC connection), `wrongKey`. `window.demo` exposes the session, the page's own log
 * of what it rendered, and the upload's outcome, for the end-to-end test.
 */

import * as ed from "@noble/ed25519";
import bs58 from "bs58";
import * as THREE from "three";

import { CaptureSession, UploadError, type CameraPose, type UploadResult, type WalletSigner } from "../src/index.js";

const params = new URLSearchParams(location.search);
const lagMs = Math.max(0, Number(params.get("lag") ?? "0") || 0);
const seconds = Math.max(1, Number(params.get("seconds") ?? "60") || 60);
const api = params.get("api") ?? `${location.protocol}//${location.hostname}:8080`;

/** A test keypair from a fixed seed: never a real wallet's. */
const TEST_SEED = new Uint8Array(32).map((_, i) => (i * 7 + 11) & 0xff);
const OTHER_SEED = new Uint8Array(32).map((_, i) => (i * 13 + 5) & 0xff);

async function testSigner(): Promise<WalletSigner> {
  const publicKey = bs58.encode(await ed.getPublicKeyAsync(TEST_SEED));
  const seed = params.has("wrongKey") ? OTHER_SEED : TEST_SEED;
  return { publicKey, signMessage: (message) => ed.signAsync(message, seed) };
}

// The scene: a grid of city blocks with streets between, the camera at driver height.
const sceneCanvas = document.getElementById("scene") as HTMLCanvasElement;
const view = document.getElementById("view") as HTMLCanvasElement;
// `?width=`: the recorded view's width (default 1280, as the real streams; 704/1280 of it high).
const width = Math.min(1920, Math.max(320, Number(params.get("width") ?? "1280") || 1280));
view.width = Math.round(width / 16) * 16;
view.height = Math.round((width * 704) / 1280 / 16) * 16;
view.style.width = `${view.width}px`;
view.style.height = `${view.height}px`;
const viewContext = view.getContext("2d", { alpha: false }) as CanvasRenderingContext2D;
// The scene renders at `?scale=` of the view (default 0.5) and is scaled up onto it: WebGL may run
// on the CPU, and the model's stream is soft anyway.
const scale = Math.min(1, Math.max(0.25, Number(params.get("scale") ?? "0.5") || 0.5));
sceneCanvas.width = Math.round(view.width * scale);
sceneCanvas.height = Math.round(view.height * scale);
const renderer = new THREE.WebGLRenderer({ canvas: sceneCanvas, antialias: false, preserveDrawingBuffer: true });
renderer.setSize(sceneCanvas.width, sceneCanvas.height, false);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x9fc3e6);
scene.fog = new THREE.Fog(0x9fc3e6, 60, 260);
scene.add(new THREE.HemisphereLight(0xffffff, 0x445566, 1.2));
const sun = new THREE.DirectionalLight(0xffffff, 1.5);
sun.position.set(40, 80, 20);
scene.add(sun);

/** Deterministic pseudo-random numbers, so every run drives through the same city. */
let seed = 12345;
const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);

const BLOCK = 40;
const STREET = 14;
const ground = new THREE.Mesh(
  new THREE.PlaneGeometry(2000, 2000),
  new THREE.MeshLambertMaterial({ map: groundTexture() }),
);
ground.rotation.x = -Math.PI / 2;
scene.add(ground);
// The buildings in a few instanced meshes (a few draw calls: WebGL may run on the CPU), each
// with its own irregular facade, so that the picture's motion is not periodic.
const BLOCKS_X = 12;
const BLOCKS_Z = 24;
const FACADES = 6;
/** Each building's ground rectangle, [min x, max x, min z, max z]: the car cannot drive into one. */
const footprints: [number, number, number, number][] = [];
const perFacade = Math.ceil(((2 * BLOCKS_X + 1) * (BLOCKS_Z + 5) * 4) / FACADES);
const facades = Array.from({ length: FACADES }, () => {
  const mesh = new THREE.InstancedMesh(
    new THREE.BoxGeometry(1, 1, 1),
    new THREE.MeshLambertMaterial({ map: facadeTexture() }),
    perFacade,
  );
  mesh.count = 0;
  scene.add(mesh);
  return mesh;
});
{
  const place = new THREE.Object3D();
  for (let bx = -BLOCKS_X; bx <= BLOCKS_X; bx++) {
    // The two columns of blocks beside the start are left open: a boulevard 120 m wide, so that a
    // scripted drive whose turns do not cancel exactly (keys act per animation frame) stays clear
    // of the walls.
    if (bx === 0 || bx === 1) continue;
    for (let bz = -BLOCKS_Z; bz <= 4; bz++) {
      const cx = bx * (BLOCK + STREET);
      const cz = bz * (BLOCK + STREET);
      for (let k = 0; k < 4; k++) {
        const w = 8 + random() * 10;
        const d = 8 + random() * 10;
        const h = 8 + random() * 50;
        place.scale.set(w, h, d);
        place.position.set(cx + (k % 2 ? 1 : -1) * (BLOCK / 4), h / 2, cz + (k < 2 ? 1 : -1) * (BLOCK / 4));
        place.updateMatrix();
        const mesh = facades[Math.floor(random() * FACADES) % FACADES];
        if (mesh.count >= perFacade) continue;
        footprints.push([place.position.x - w / 2, place.position.x + w / 2, place.position.z - d / 2, place.position.z + d / 2]);
        mesh.setMatrixAt(mesh.count, place.matrix);
        mesh.setColorAt(mesh.count, new THREE.Color().setHSL(random(), 0.25 + random() * 0.3, 0.4 + random() * 0.3));
        mesh.count += 1;
      }
    }
  }
}

/** A canvas to paint a texture on, and its 2D context, filled with `fill` when given. */
function paintCanvas(width: number, height: number, fill?: string): [HTMLCanvasElement, CanvasRenderingContext2D] {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext("2d") as CanvasRenderingContext2D;
  if (fill !== undefined) {
    g.fillStyle = fill;
    g.fillRect(0, 0, width, height);
  }
  return [canvas, g];
}

/** A facade: windows of uneven size and spacing, some lit, with grime, tinted per building. */
function facadeTexture(): THREE.Texture {
  const size = 256;
  const [canvas, g] = paintCanvas(size, size, "#e4e4e4");
  let y = 4 + random() * 10;
  while (y < size - 12) {
    const rowHeight = 10 + random() * 18;
    let x = 3 + random() * 8;
    while (x < size - 8) {
      const w = 6 + random() * 22;
      const light = random() < 0.2 ? 200 + random() * 50 : 30 + random() * 110;
      g.fillStyle = `rgb(${light},${light + 8},${Math.min(255, light + 30)})`;
      g.fillRect(x, y, w, rowHeight * (0.6 + random() * 0.3));
      x += w + 3 + random() * 14;
    }
    y += rowHeight + 4 + random() * 10;
  }
  for (let i = 0; i < 400; i++) {
    g.fillStyle = `rgba(0,0,0,${random() * 0.15})`;
    g.fillRect(random() * size, random() * size, 2 + random() * 6, 2 + random() * 6);
  }
  return new THREE.CanvasTexture(canvas);
}

/**
 * A street texture: asphalt patched in many greys, with lane marks and kerbs, so that driving
 * forward moves a textured road through the lower half of the picture (the motion ALIGN measures).
 */
function groundTexture(): THREE.Texture {
  const size = 512;
  const [canvas, g] = paintCanvas(size, size, "#45484e");
  for (let i = 0; i < 700; i++) {
    const grey = 30 + random() * 90;
    g.fillStyle = `rgb(${grey},${grey + 2},${grey + 6})`;
    g.fillRect(random() * size, random() * size, 6 + random() * 40, 4 + random() * 30);
  }
  for (let i = 0; i < 3000; i++) {
    g.fillStyle = `rgba(255,255,255,${random() * 0.25})`;
    g.fillRect(random() * size, random() * size, 2 + random() * 3, 2 + random() * 3);
  }
  g.fillStyle = "#e8dfa8";
  for (let y = 0; y < size; y += 64) g.fillRect(size / 2 - 5, y, 10, 32);
  g.strokeStyle = "#b8b8b0";
  g.lineWidth = 10;
  g.strokeRect(0, 0, size, size);
  const texture = new THREE.CanvasTexture(canvas);
  texture.wrapS = texture.wrapT = THREE.RepeatWrapping;
  texture.repeat.set(2000 / (BLOCK + STREET), 2000 / (BLOCK + STREET));
  texture.offset.set(0.5 - STREET / 2 / (BLOCK + STREET), 0);
  return texture;
}

/** A sky of clouds on a cylinder around the camera (it moves with the car: only turning moves it). */
function skyTexture(): THREE.Texture {
  const [canvas, g] = paintCanvas(1024, 256);
  const sky = g.createLinearGradient(0, 0, 0, canvas.height);
  sky.addColorStop(0, "#5d8fc9");
  sky.addColorStop(1, "#b9d3ee");
  g.fillStyle = sky;
  g.fillRect(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < 90; i++) {
    const x = random() * canvas.width;
    const y = 20 + random() * (canvas.height - 60);
    for (let k = 0; k < 6; k++) {
      g.fillStyle = `rgba(255,255,255,${0.35 + random() * 0.5})`;
      g.beginPath();
      g.ellipse(x + (random() - 0.5) * 60, y + (random() - 0.5) * 14, 10 + random() * 30, 5 + random() * 12, 0, 0, 2 * Math.PI);
      g.fill();
    }
  }
  const texture = new THREE.CanvasTexture(canvas);
  texture.wrapS = THREE.RepeatWrapping;
  return texture;
}
const sky = new THREE.Mesh(
  new THREE.CylinderGeometry(300, 300, 400, 48, 1, true),
  new THREE.MeshBasicMaterial({ map: skyTexture(), side: THREE.BackSide, fog: false }),
);
sky.position.y = 60;
scene.add(sky);

const camera = new THREE.PerspectiveCamera(70, sceneCanvas.width / sceneCanvas.height, 0.1, 400);

// Driving: W speeds up, S brakes, A and D turn (at TURN_RATE rad/s, a game's brisk turn); the
// mouse turns under pointer lock.
const TURN_RATE = 1.2;
/** The keys held now. */
const held = new Set<string>();
const state = { x: (BLOCK + STREET) / 2, z: 40, yaw: 0, speed: 0, steer: 0 };
/** Every change of a held key with its page time: which keys were held at any past moment. */
const keyChanges: { t: number; key: string; down: boolean }[] = [];
const onKey = (e: KeyboardEvent) => {
  const key = e.key.toLowerCase();
  const down = e.type === "keydown";
  if (held.has(key) === down) return;
  keyChanges.push({ t: performance.now(), key, down });
  if (down) held.add(key);
  else held.delete(key);
};
addEventListener("keydown", onKey);
addEventListener("keyup", onKey);
view.addEventListener("click", () => void view.requestPointerLock?.());
addEventListener("mousemove", (e) => {
  if (document.pointerLockElement === view) state.yaw -= e.movementX * 0.003;
});

function drive(dt: number): void {
  const accel = held.has("w") ? 8 : held.has("s") ? -14 : -2;
  state.speed = Math.min(14, Math.max(0, state.speed + accel * dt));
  const turn = (held.has("a") ? 1 : 0) - (held.has("d") ? 1 : 0);
  // Logged as the prototype logs it: this frame's yaw step.
  state.steer = turn * TURN_RATE * dt;
  state.yaw += state.steer;
  const x = state.x - Math.sin(state.yaw) * state.speed * dt;
  const z = state.z - Math.cos(state.yaw) * state.speed * dt;
  // A wall stops the car (a metre short of it), as a game's would.
  const hits = footprints.some(([x0, x1, z0, z1]) => x > x0 - 1 && x < x1 + 1 && z > z0 - 1 && z < z1 + 1);
  if (hits) state.speed = 0;
  else {
    state.x = x;
    state.z = z;
  }
}

function pose(): CameraPose {
  return {
    pos: [state.x, 1.6, state.z],
    yaw: state.yaw,
    speed: state.speed,
    throttle: held.has("w") ? 1 : 0,
    brake: held.has("s") ? 1 : 0,
    steer: state.steer,
  };
}

/**
 * One entry per picture put on the view while a session records: when, the page time of the
 * state it shows, the keys held then.
 */
interface Rendered {
  drawnT: number;
  sourceT: number;
  held: string[];
}
const rendered: Rendered[] = [];

/**
 * `?stamp`: each picture carries its index in `rendered` as a row of black and white blocks in
 * the bottom left corner, so that a test can tell which picture each recorded frame holds (and so
 * when it was drawn and what it showed). The layout is shared with the end-to-end test
 * (`server/tests/capture_e2e.rs`): STAMP_BITS blocks of STAMP_BLOCK px from the left edge, on a
 * bottom row of that height; bit 0 (leftmost) is an even-parity bit over the index's bits, then
 * the index, most significant bit first, white for 1.
 */
const stamp = params.has("stamp");
const STAMP_BITS = 16;
const STAMP_BLOCK = 12;
function drawStamp(index: number): void {
  // Past the largest index the blocks hold, no stamp (a test reads the frame as unstamped).
  if (index >= 2 ** (STAMP_BITS - 1)) return;
  const bits = Array.from({ length: STAMP_BITS - 1 }, (_, i) => (index >> (STAMP_BITS - 2 - i)) & 1);
  const parity = bits.reduce((a, b) => a ^ b, 0);
  const y = view.height - STAMP_BLOCK;
  [parity, ...bits].forEach((bit, i) => {
    viewContext.fillStyle = bit ? "#fff" : "#000";
    viewContext.fillRect(i * STAMP_BLOCK, y, STAMP_BLOCK, STAMP_BLOCK);
  });
}
/**
 * The delay line: the car's state at every animation frame, by page time. Each picture shows the
 * scene as it was exactly `lagMs` ago, the pose interpolated between the two frames around that
 * moment (the city is still; only the camera moves), so the picture lags the inputs by a constant
 * delay as a model's stream would, without copying pixels back from WebGL. The page logs that
 * moment and the keys held at the animation frame nearest to it (from the key events' own times):
 * what the frame's label must say.
 */
const history: { t: number; x: number; z: number; yaw: number }[] = [];
/**
 * The pose at page time `t` (the oldest kept, before the history reaches back that far), and the
 * animation frame nearest to it: the game's state exists only at frames, and the keys it held at
 * that one are the keys the picture shows.
 */
function poseAt(t: number): { t: number; frameT: number; x: number; z: number; yaw: number } {
  while (history.length > 1 && history[1].t <= t) history.shift();
  const [a, b] = history;
  if (b === undefined || t <= a.t) return { ...a, frameT: a.t };
  const f = (t - a.t) / (b.t - a.t);
  const frameT = f < 0.5 ? a.t : b.t;
  return { t, frameT, x: a.x + f * (b.x - a.x), z: a.z + f * (b.z - a.z), yaw: a.yaw + f * (b.yaw - a.yaw) };
}
const heldThen = new Set<string>();
/** The keys held at page time `t` (called with `t` never going back). */
function heldAt(t: number): string[] {
  while (keyChanges.length > 0 && keyChanges[0].t <= t) {
    const change = keyChanges.shift() as { key: string; down: boolean };
    if (change.down) heldThen.add(change.key);
    else heldThen.delete(change.key);
  }
  return [...heldThen].sort();
}
let last = performance.now();
function frame(): void {
  // As the prototype's game: the car moves once per animation frame, a whole step with the keys
  // held then (ALIGN models exactly this: a key acts half a frame early on average).
  const now = performance.now();
  drive(Math.min(0.1, (now - last) / 1000));
  last = now;
  history.push({ t: now, x: state.x, z: state.z, yaw: state.yaw });
  const shown = poseAt(now - lagMs);
  camera.position.set(shown.x, 1.6, shown.z);
  camera.rotation.set(0, shown.yaw, 0, "YXZ");
  sky.position.x = shown.x;
  sky.position.z = shown.z;
  renderer.render(scene, camera);
  viewContext.drawImage(sceneCanvas, 0, 0, view.width, view.height);
  // Logged (and numbered) only while a session records.
  const recording = demo.session?.state === "recording";
  if (stamp) drawStamp(recording ? rendered.length : 0);
  if (recording) rendered.push({ drawnT: performance.now(), sourceT: shown.t, held: heldAt(shown.frameT) });
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// The session: the view's stream recorded, uploaded when it stops.
const status = document.getElementById("status") as HTMLSpanElement;
const startButton = document.getElementById("start") as HTMLButtonElement;
const stopButton = document.getElementById("stop") as HTMLButtonElement;
startButton.textContent = `Start (${seconds} s)`;
const say = (text: string, error = false) => {
  status.textContent = text;
  status.className = error ? "error" : "";
};

interface Demo {
  lagMs: number;
  rendered: Rendered[];
  session: CaptureSession | null;
  result: UploadResult | null;
  error: { code: string; message: string } | null;
  /** Why `?peer` gave no connection to sample RTT from. */
  peerError: string | null;
  done: Promise<void> | null;
  start(): Promise<void>;
  stopAndUpload(): Promise<void>;
}

/**
 * `?peer`: a WebRTC connection from this page to itself, standing in for the connection to the
 * model's server, so that the session samples RTT from `getStats()` as it would in production (a
 * loopback's RTT is well under a millisecond). The other end is kept alive with the page.
 */
const peers: RTCPeerConnection[] = [];
async function loopbackPeer(): Promise<RTCPeerConnection> {
  const local = new RTCPeerConnection();
  const remote = new RTCPeerConnection();
  peers.push(local, remote);
  const warn = (err: unknown) => console.warn(`loopback ICE candidate refused: ${String(err)}`);
  local.onicecandidate = (e) => void (e.candidate && remote.addIceCandidate(e.candidate).catch(warn));
  remote.onicecandidate = (e) => void (e.candidate && local.addIceCandidate(e.candidate).catch(warn));
  let timer = 0;
  const open = new Promise<void>((resolve, reject) => {
    const channel = local.createDataChannel("rtt");
    channel.onopen = () => resolve();
    timer = window.setTimeout(() => reject(new Error("the loopback connection did not open in 5 s")), 5000);
  });
  try {
    await local.setLocalDescription(await local.createOffer());
    await remote.setRemoteDescription(local.localDescription as RTCSessionDescription);
    await remote.setLocalDescription(await remote.createAnswer());
    await local.setRemoteDescription(remote.localDescription as RTCSessionDescription);
    await open;
    return local;
  } catch (err) {
    local.close();
    remote.close();
    peers.splice(0);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

const demo: Demo = {
  lagMs,
  rendered,
  session: null,
  result: null,
  error: null,
  peerError: null,
  done: null,
  async start() {
    if (demo.session !== null || startButton.disabled) return;
    startButton.disabled = true;
    let peer: RTCPeerConnection | undefined;
    if (params.has("peer")) {
      try {
        peer = await loopbackPeer();
      } catch (err) {
        // Recorded without RTT then, and said so.
        demo.peerError = err instanceof Error ? err.message : String(err);
        console.warn(`no RTT samples: ${demo.peerError}`);
      }
    }
    const session = new CaptureSession({
      stream: view.captureStream(30),
      peer,
      signer: await testSigner(),
      cameraPose: pose,
      prompt: "demo street, three.js",
      scenario: { id: "demo", name: "Capture demo", type: "free" },
      target: window,
      maxDurationMs: seconds * 1000,
    });
    demo.session = session;
    await session.start();
    stopButton.disabled = false;
    say(`recording ${session.sessionId} (lag ${lagMs} ms)`);
    // At the time limit the session stops itself; the upload follows.
    demo.done = session.finished.then(() => demo.stopAndUpload());
  },
  async stopAndUpload() {
    const session = demo.session;
    if (!session || (session.state !== "recording" && session.state !== "stopped")) return;
    stopButton.disabled = true;
    try {
      demo.result = await session.upload({
        api,
        onProgress: (p) => say(`uploading ${p.part} (${p.partsDone}/5, ${(p.bytesDone / 1e6).toFixed(1)} of ${(p.bytesTotal / 1e6).toFixed(1)} MB)`),
      });
      say(`uploaded ${session.sessionId}: ${(demo.result.bytes / 1e6).toFixed(1)} MB`);
    } catch (err) {
      const code = err instanceof UploadError ? err.code : "error";
      demo.error = { code, message: err instanceof Error ? err.message : String(err) };
      say(`upload failed (${code}): ${demo.error.message}`, true);
    }
  },
};
startButton.addEventListener("click", () => void demo.start());
stopButton.addEventListener("click", () => void demo.stopAndUpload());
(window as unknown as { demo: Demo }).demo = demo;
