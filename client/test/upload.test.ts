// The upload against a scripted API: the signed message is the contract's, the parts go in
// order with the signed headers, failures that may pass are retried, refusals stop with the
// API's code.

import { strict as assert } from "node:assert";
import { test } from "node:test";

import * as ed from "@noble/ed25519";
import bs58 from "bs58";

import { issuedAt, PART_ORDER, UploadError, uploadBundle, uploadMessage, type Parts, type WalletSigner } from "../src/upload.js";

function signer(): WalletSigner & { secret: Uint8Array; public: Promise<Uint8Array> } {
  const secret = new Uint8Array(32).fill(7);
  const pub = ed.getPublicKeyAsync(secret);
  return {
    secret,
    public: pub,
    publicKey: "",
    signMessage: (message) => ed.signAsync(message, secret),
  };
}

function parts(): Parts {
  const blob = (text: string, type: string) => new Blob([text], { type });
  return {
    video: blob("webm bytes", "video/webm"),
    inputs: blob("[]", "application/json"),
    camera: blob("[]", "application/json"),
    latency: blob("{}", "application/json"),
    meta: blob('{"a":1}', "application/json"),
  };
}

interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string;
}

/** A fetch answering from `script(call, index)`. */
function scripted(script: (call: Call, index: number) => Response | Error) {
  const calls: Call[] = [];
  const fetcher = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const body = init?.body instanceof Blob ? await init.body.text() : String(init?.body ?? "");
    const call = {
      url: String(input),
      method: init?.method ?? "GET",
      headers: (init?.headers ?? {}) as Record<string, string>,
      body,
    };
    calls.push(call);
    const answer = script(call, calls.length - 1);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { calls, fetcher: fetcher as typeof fetch };
}

function created(): Response {
  const uploads = Object.fromEntries(
    PART_ORDER.map((part) => [
      part,
      {
        key: `W/1_${part}`,
        url: `http://s3.test/${part}`,
        method: "PUT",
        headers: { "content-type": part === "video" ? "video/webm" : "application/json", "content-length": "9" },
      },
    ]),
  );
  return new Response(JSON.stringify({ uploads, expiresAt: "2026-12-03T00:10:00Z" }), { status: 201 });
}

test("the signed message is the contract's, byte for byte", () => {
  const text = uploadMessage({
    wallet: "W",
    sessionId: "session_1_abc",
    bytes: { video: 5, inputs: 4, camera: 3, latency: 2, meta: 1 },
    nonce: "N".repeat(16),
    issuedAt: "2026-12-02T04:00:00Z",
  });
  assert.equal(
    text,
    "Scale Diffusion upload\nwallet: W\nsession: session_1_abc\nvideo: 5\ninputs: 4\ncamera: 3\nlatency: 2\nmeta: 1\n" +
      `nonce: ${"N".repeat(16)}\nissued: 2026-12-02T04:00:00Z`,
  );
  assert.equal(issuedAt(new Date(Date.UTC(2026, 11, 2, 4, 0, 0, 123))), "2026-12-02T04:00:00Z");
});

test("a signed request, then the parts in order; a 503 and a network error are retried", async () => {
  const wallet = signer();
  wallet.publicKey = bs58.encode(await wallet.public);
  const { calls, fetcher } = scripted((call, index) => {
    if (call.url.endsWith("/v1/uploads")) return index === 0 ? new Response("busy", { status: 503 }) : created();
    if (call.url.endsWith("/camera") && calls.filter((c) => c.url === call.url).length === 1) {
      return new TypeError("connection reset");
    }
    return new Response("", { status: 200 });
  });
  const progress: string[] = [];
  const result = await uploadBundle(parts(), {
    api: "http://api.test/",
    signer: wallet,
    sessionId: "session_1769936388223_tp5owb",
    fetch: fetcher,
    sleep: async () => {},
    nonce: "abcdefghij0123456789",
    now: () => new Date(Date.UTC(2026, 11, 3, 5, 0, 0)),
    onProgress: (p) => progress.push(`${p.part}:${p.partsDone}:${p.attempt}`),
  });
  assert.deepEqual(
    calls.map((c) => `${c.method} ${c.url}`),
    [
      "POST http://api.test/v1/uploads",
      "POST http://api.test/v1/uploads",
      "PUT http://s3.test/video",
      "PUT http://s3.test/inputs",
      "PUT http://s3.test/camera",
      "PUT http://s3.test/camera",
      "PUT http://s3.test/latency",
      "PUT http://s3.test/meta",
    ],
  );
  assert.equal(result.keys.meta, "W/1_meta");
  assert.equal(result.bytes, 10 + 2 + 2 + 2 + 7);
  assert.ok(progress.includes("camera:2:2") && progress.at(-1) === "meta:5:1", progress.join(" "));
  // The signed headers go along (the browser sets the length itself).
  assert.equal(calls[2].headers["content-type"], "video/webm");
  assert.equal(calls[2].headers["content-length"], undefined);
  // The signature verifies over the message the server rebuilds from the request's fields.
  const request = JSON.parse(calls[1].body);
  assert.equal(request.issuedAt, "2026-12-03T05:00:00Z");
  assert.deepEqual(request.parts.video, { bytes: 10, contentType: "video/webm" });
  const message = uploadMessage({
    wallet: request.wallet,
    sessionId: request.sessionId,
    bytes: Object.fromEntries(PART_ORDER.map((p) => [p, request.parts[p].bytes])) as never,
    nonce: request.nonce,
    issuedAt: request.issuedAt,
  });
  assert.ok(await ed.verifyAsync(bs58.decode(request.signature), new TextEncoder().encode(message), await wallet.public));
});

test("a refusal stops the upload with the API's code, and nothing is sent", async () => {
  const wallet = signer();
  wallet.publicKey = bs58.encode(await wallet.public);
  const { calls, fetcher } = scripted(() =>
    new Response(JSON.stringify({ error: { code: "bad_signature", message: "the signature does not verify" } }), {
      status: 401,
    }),
  );
  await assert.rejects(
    uploadBundle(parts(), { api: "http://api.test", signer: wallet, sessionId: "session_1_abcdef", fetch: fetcher, sleep: async () => {} }),
    (err: unknown) => err instanceof UploadError && err.code === "bad_signature" && err.status === 401,
  );
  assert.equal(calls.length, 1);
});

test("retries end with the last failure", async () => {
  const wallet = signer();
  wallet.publicKey = bs58.encode(await wallet.public);
  const { calls, fetcher } = scripted(() => new Response("<Error/>", { status: 500 }));
  await assert.rejects(
    uploadBundle(parts(), { api: "http://api.test", signer: wallet, sessionId: "session_1_abcdef", fetch: fetcher, sleep: async () => {}, attempts: 3 }),
    (err: unknown) => err instanceof UploadError && err.code === "http_500",
  );
  assert.equal(calls.length, 3);
});
