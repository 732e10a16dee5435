// Drives the capture demo in Debian's Chromium (headless, through playwright-core): opens the
// page, starts a session, plays a scripted drive (keys and mouse) for the session's length,
// waits for the upload, and prints one JSON object on stdout: the session, the page's own log of
// what it rendered, the recorder's timing and the upload's outcome. Used by the end-to-end test
// (server/tests/capture_e2e.rs); by hand:
//
//   node e2e/drive.mjs --url 'http://127.0.0.1:8090/demo/?lag=300&seconds=30&api=http://127.0.0.1:8080'
//
// Flags: --url URL (required), --chromium PATH (default /usr/bin/chromium), --screenshot FILE.

import { chromium } from "playwright-core";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
if (!args.url) {
  console.error("usage: node e2e/drive.mjs --url URL [--chromium PATH] [--screenshot FILE]");
  process.exit(2);
}
const seconds = Number(new URL(args.url).searchParams.get("seconds") ?? "60");

/** The drive: [at s, action]; keys held until released. */
const SCRIPT = [
  [0.5, ["down", "w"]],
  [4.0, ["down", "a"]],
  [6.0, ["up", "a"]],
  [8.0, ["down", "d"]],
  [9.5, ["up", "d"]],
  [11.0, ["up", "w"]],
  [11.5, ["down", "s"]],
  [12.0, ["up", "s"]],
  [13.0, ["down", "a"]],
  [15.0, ["up", "a"]],
  [15.5, ["down", "w"]],
  [17.0, ["mouse", 120]],
  [18.0, ["mouse", -80]],
  [19.0, ["down", "d"]],
  [20.5, ["up", "d"]],
  [22.0, ["up", "w"]],
  [23.0, ["down", "d"]],
  [24.5, ["up", "d"]],
  [25.0, ["down", "w"]],
  [27.0, ["down", "a"]],
  [28.0, ["up", "a"]],
  [29.0, ["up", "w"]],
];

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
      // Under pointer lock the movement is what is logged; without it, nothing is.
      const box = await page.locator("#view").boundingBox();
      const x = box.x + box.width / 2;
      const y = box.y + box.height / 2;
      await page.mouse.move(x, y);
      for (let i = 1; i <= 10; i++) await page.mouse.move(x + (value * i) / 10, y, { steps: 1 });
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
      cameraSamples: s.log.camera.length,
      pointerLocked: document.pointerLockElement !== null,
      rendered: demo.rendered,
      result: demo.result,
      error: demo.error,
    };
  });
  outcome.console = logs.slice(-50);
  process.stdout.write(JSON.stringify(outcome));
  await browser.close();
} catch (err) {
  await fail(`the drive failed: ${err?.stack ?? err}`);
}
