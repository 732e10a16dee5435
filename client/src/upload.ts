/**
 * Upload per SPEC section 9: the wallet signs the request's fields, the API answers one
 * presigned PUT per part, the parts go in order (video first, meta last). Network failures,
 * 429 and 5xx are retried with exponential backoff; any other refusal stops the upload with the
 * API's own code and message. Progress and errors reach the page through callbacks and the
 * rejected promise.
 */

import bs58 from "bs58";

/** The wallet interface the page has (`signMessage` signs the raw bytes with ed25519). */
export interface WalletSigner {
  /** base58 of the 32-byte public key. */
  publicKey: string;
  signMessage(message: Uint8Array): Promise<Uint8Array>;
}

/** The five parts, as the upload sends them. */
export interface Parts {
  video: Blob;
  inputs: Blob;
  camera: Blob;
  latency: Blob;
  meta: Blob;
}

/** Upload order: the video first, the meta last (the pipeline waits for all five anyway). */
export const PART_ORDER = ["video", "inputs", "camera", "latency", "meta"] as const;
export type PartName = (typeof PART_ORDER)[number];

export interface UploadProgress {
  part: PartName;
  /** Parts sent so far, this one included once it is done. */
  partsDone: number;
  bytesDone: number;
  bytesTotal: number;
  /** Attempt number of the current request (1 = first). */
  attempt: number;
}

export interface UploadOptions {
  /** The API's origin, e.g. `http://127.0.0.1:8080`. */
  api: string;
  signer: WalletSigner;
  sessionId: string;
  onProgress?: (progress: UploadProgress) => void;
  /** Attempts per request (default 5). */
  attempts?: number;
  /** First backoff in ms (default 500), doubled per attempt. */
  backoffMs?: number;
  fetch?: typeof fetch;
  now?: () => Date;
  sleep?: (ms: number) => Promise<void>;
  /** 32 characters of [A-Za-z0-9]. */
  nonce?: string;
}

export interface UploadResult {
  keys: Record<PartName, string>;
  bytes: number;
}

/** Why an upload stopped: the API's stable code (or `network`, `storage`), and its sentence. */
export class UploadError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number | null,
    readonly part: PartName | null = null,
  ) {
    super(message);
    this.name = "UploadError";
  }
}

/** The message the wallet signs, exactly as the server rebuilds it. */
export function uploadMessage(fields: {
  wallet: string;
  sessionId: string;
  bytes: Record<PartName, number>;
  nonce: string;
  issuedAt: string;
}): string {
  return [
    "Scale Diffusion upload",
    `wallet: ${fields.wallet}`,
    `session: ${fields.sessionId}`,
    ...PART_ORDER.map((part) => `${part}: ${fields.bytes[part]}`),
    `nonce: ${fields.nonce}`,
    `issued: ${fields.issuedAt}`,
  ].join("\n");
}

/** RFC 3339 UTC to the second, as the contract's example. */
export function issuedAt(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, "Z");
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function newNonce(): string {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => ALNUM[b % ALNUM.length]).join("");
}

const CONTENT_TYPES: Record<PartName, string> = {
  video: "video/webm",
  inputs: "application/json",
  camera: "application/json",
  latency: "application/json",
  meta: "application/json",
};

interface Presigned {
  key: string;
  url: string;
  method: string;
  headers: Record<string, string>;
}

/** Asks for the URLs, then sends the parts in order. */
export async function uploadBundle(parts: Parts, options: UploadOptions): Promise<UploadResult> {
  const fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  const now = options.now ?? (() => new Date());
  const sleep = options.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const attempts = options.attempts ?? 5;
  const backoff = options.backoffMs ?? 500;
  const bytes = Object.fromEntries(PART_ORDER.map((p) => [p, parts[p].size])) as Record<
    PartName,
    number
  >;
  const total = PART_ORDER.reduce((sum, p) => sum + bytes[p], 0);
  const nonce = options.nonce ?? newNonce();
  const issued = issuedAt(now());
  const wallet = options.signer.publicKey;
  const message = uploadMessage({ wallet, sessionId: options.sessionId, bytes, nonce, issuedAt: issued });
  const signature = bs58.encode(await options.signer.signMessage(new TextEncoder().encode(message)));
  const body = JSON.stringify({
    wallet,
    sessionId: options.sessionId,
    parts: Object.fromEntries(
      PART_ORDER.map((p) => [p, { bytes: bytes[p], contentType: CONTENT_TYPES[p] }]),
    ),
    issuedAt: issued,
    nonce,
    signature,
  });

  /** One request, retried while the failure may pass (network, 429, 5xx). */
  const withRetries = async (
    part: PartName | null,
    request: () => Promise<Response>,
    progress: (attempt: number) => void,
  ): Promise<Response> => {
    let last: UploadError | null = null;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      progress(attempt);
      let response: Response;
      try {
        response = await request();
      } catch (err) {
        last = new UploadError("network", `cannot reach the server: ${String(err)}`, null, part);
        await sleep(backoff * 2 ** (attempt - 1));
        continue;
      }
      if (response.ok) return response;
      const refusal = await refusalOf(response, part);
      if (response.status !== 429 && response.status < 500) throw refusal;
      last = refusal;
      await sleep(backoff * 2 ** (attempt - 1));
    }
    throw last ?? new UploadError("network", "no attempt was made", null, part);
  };

  const created = await withRetries(
    null,
    () =>
      fetcher(`${options.api.replace(/\/$/, "")}/v1/uploads`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      }),
    () => {},
  );
  const answer = (await created.json()) as { uploads?: Record<string, Presigned> };
  const uploads = answer.uploads;
  if (!uploads || PART_ORDER.some((p) => typeof uploads[p]?.url !== "string")) {
    throw new UploadError("bad_answer", "the API's answer lists no URL for every part", created.status);
  }
  let bytesDone = 0;
  const keys = {} as Record<PartName, string>;
  for (const [index, part] of PART_ORDER.entries()) {
    const target = uploads[part];
    await withRetries(
      part,
      () =>
        fetcher(target.url, {
          method: target.method || "PUT",
          // The signed headers, except the length, which the browser sets itself.
          headers: Object.fromEntries(
            Object.entries(target.headers ?? {}).filter(([name]) => name.toLowerCase() !== "content-length"),
          ),
          body: parts[part],
        }),
      (attempt) =>
        options.onProgress?.({ part, partsDone: index, bytesDone, bytesTotal: total, attempt }),
    );
    bytesDone += bytes[part];
    keys[part] = target.key;
    options.onProgress?.({ part, partsDone: index + 1, bytesDone, bytesTotal: total, attempt: 1 });
  }
  return { keys, bytes: total };
}

/** The API's `{"error": {"code", "message"}}`, or what S3 said, as an error. */
async function refusalOf(response: Response, part: PartName | null): Promise<UploadError> {
  const text = await response.text().catch(() => "");
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof parsed.error?.code === "string") {
      return new UploadError(parsed.error.code, String(parsed.error.message ?? ""), response.status, part);
    }
  } catch {
    // Not the API's JSON: S3 answers XML.
  }
  const code = part === null ? `http_${response.status}` : "storage";
  return new UploadError(code, `${response.status} ${text.slice(0, 200)}`, response.status, part);
}
