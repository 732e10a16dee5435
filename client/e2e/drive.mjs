// Drives the capture demo in Debian's Chromium (headless, through playwright-core): opens the
// page, starts a session, plays a scripted drive (keys and mouse) for the session's length,
// waits for the upload, and prints one JSON object on stdout: the session, the page's own log of
// what it rendered, the recorder's timing and the upload's outcome. Used by the end-to-end test
// (server/tests/capture_e2e.rs); by hand:
//
//   node e2e/drive.mjs --url 'http://127.0.0.1:8090/demo/?lag=300&seconds=30&api=http://127.0.0.1:8080' \
//     [--bundle DIR] [--screenshot FILE]
//
// Flags: --url URL (required), --chromium PATH (default /usr/bin/chromium), --screenshot FILE,
// --bundle DIR (also writes the session's five parts into DIR/<wallet>/, as the raw bucket has
// them, so that `scale-diffusion process DIR` runs on it with no stack: give the page an `api`
// that does not answer and the upload's failure is reported but not fatal).

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { chromium } from "playwright-core";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
if (!args.url) {
  console.error("usage: node e2e/drive.mjs --url URL [--chromium PATH] [--screenshot FILE]");
  process.exit(2);
}
const seconds = Number(new URL(args.url).searchParams.get("seconds") ?? "60");

/**
 * The drive: [at s, action]; keys held until released. Turns are S-curves (one way for `t`, the
 * other for `2t`, back for `t`: the car ends in its lane, heading as before), of uneven lengths,
 * while driving, coasting and standing still, by keys and by the mouse, so that the motion ALIGN
 * matches has no period to be fooled by.
 */
const sCurve = (at, key, t) => {
  const other = key === "a" ? "d" : "a";
  return [
    [at, ["down", key]],
    [at + t, ["up", key]],
    [at + t, ["down", other]],
    [at + 3 * t, ["up", other]],
    [at + 3 * t, ["down", key]],
    [at + 4 * t, ["up", key]],
  ];
};
const mouseCurve = (at, px) => [
  [at, ["mouse", px]],
  [at + 0.45, ["mouse", -2 * px]],
  [at + 0.9, ["mouse", px]],
];
const SCRIPT = [
  [0.3, ["down", "w"]],
  ...sCurve(2.5, "a", 0.4),
  [5.0, ["up", "w"]],
  [5.5, ["down", "s"]],
  [6.5, ["up", "s"]],
  // Standing still: turn left, look right with the mouse, turn back right.
  [7.0, ["down", "a"]],
  [8.0, ["up", "a"]],
  [8.8, ["mouse", 120]],
  [9.6, ["down", "d"]],
  [10.3, ["up", "d"]],
  [11.0, ["down", "w"]],
  ...sCurve(13.5, "d", 0.35),
  [16.0, ["up", "w"]],
  [16.4, ["down", "s"]],
  [17.4, ["up", "s"]],
  [18.0, ["down", "d"]],
  [18.9, ["up", "d"]],
  [19.4, ["mouse", -120]],
  [20.2, ["down", "a"]],
  [20.8, ["up", "a"]],
  [21.3, ["down", "w"]],
  ...sCurve(23.5, "a", 0.3),
  ...mouseCurve(25.6, 80),
  [27.5, ["up", "w"]],
  [28.0, ["down", "s"]],
  [28.8, ["up", "s"]],
  [29.0, ["down", "a"]],
  [29.4, ["up", "a"]],
].sort((a, b) => a[0] - b[0]);

const browser = await chromium.launch({
  executablePath: args.chromium ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // WebGL on the CPU (no GPU here).
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    // The recorded canvas keeps its frame rate in a background-less headless page.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
  ],
});
const fail = async (message) => {
  console.error(message);
  await browser.close();
  process.exit(1);
};
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 780 } });
  const logs = [];
  page.on("console", (message) => logs.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (err) => logs.push(`pageerror: ${err.message}`));
  await page.goto(args.url);
  await page.waitForFunction(() => window.demo !== undefined, null, { timeout: 20_000 });
  await page.click("#view");
  // The pointer stays where the click left it: the middle of the view.
  const box = await page.locator("#view").boundingBox();
  let mouseX = box.x + box.width / 2;
  const mouseY = box.y + box.height / 2;
  await page.evaluate(() => window.demo.start());
  const started = Date.now();
  const report = setInterval(async () => {
    const n = await page.evaluate(() => window.demo.rendered.length).catch(() => -1);
    console.error(`drive: ${((Date.now() - started) / 1000).toFixed(0)} s, ${n} frames rendered`);
  }, 5000);
  for (const [at, [action, value]] of SCRIPT.filter(([at]) => at < seconds)) {
    const wait = started + at * 1000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (action === "down") await page.keyboard.down(value);
    else if (action === "up") await page.keyboard.up(value);
    else {
      // Under pointer lock the movement is what is logged; without it, nothing is. A hand's
      // sweep: `value` px to the right over 300 ms, from wherever the pointer is.
      for (let i = 1; i <= 12; i++) {
        mouseX += value / 12;
        await page.mouse.move(mouseX, mouseY, { steps: 1 });
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }
  await page.waitForFunction(() => window.demo.result !== null || window.demo.error !== null, null, {
    timeout: (seconds + 120) * 1000,
  });
  clearInterval(report);
  if (args.screenshot) await page.screenshot({ path: args.screenshot });
  const outcome = await page.evaluate(() => {
    const demo = window.demo;
    const s = demo.session;
    return {
      sessionId: s.sessionId,
      wallet: s.options.signer.publicKey,
      lagMs: demo.lagMs,
      recordingStartT: s.recordingStartT,
      startEventT: s.startEventT,
      startTime: s.startTime,
      endTime: s.endTime,
      timeOrigin: performance.timeOrigin,
      inputs: s.log.inputs.length,
      rttSamples: s.log.rttSamples.length,
      peerError: demo.peerError,
      cameraSamples: s.log.camera.length,
      pointerLocked: document.pointerLockElement !== null,
      rendered: demo.rendered,
      result: demo.result,
      error: demo.error,
    };
  });
  outcome.console = logs.slice(-50);
  if (args.bundle) await saveBundle(page, args.bundle, outcome);
  process.stdout.write(JSON.stringify(outcome));
  await browser.close();
} catch (err) {
  await fail(`the drive failed: ${err?.stack ?? err}`);
}

/** Writes the session's parts into `dir/<wallet>/` (the raw bucket's layout) as `<ms>_<sessionId>[_part].<ext>`, the raw bucket's names. */
async function saveBundle(page, dir, outcome) {
  const parts = await page.evaluate(async () => {
    const parts = await window.demo.session.finished;
    const out = {};
    for (const [name, blob] of Object.entries(parts)) {
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let text = "";
      for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      out[name] = btoa(text);
    }
    return out;
  });
  const folder = join(dir, outcome.wallet);
  await mkdir(folder, { recursive: true });
  const stamp = Date.now();
  const names = { video: ".webm", inputs: "_inputs.json", camera: "_camera.json", latency: "_latency.json", meta: "_meta.json" };
  for (const [part, suffix] of Object.entries(names)) {
    if (parts[part] === undefined) throw new Error(`the session has no ${part} part`);
    await writeFile(join(folder, `${stamp}_${outcome.sessionId}${suffix}`), Buffer.from(parts[part], "base64"));
  }
  await writeFile(join(dir, "drive.json"), JSON.stringify(outcome));
}
