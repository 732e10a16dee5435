/**
 * The Scale Diffusion capture module: a game page records a session (`CaptureSession`) and
 * uploads it through the API (`uploadBundle`). See `client/README.md`.
 */
export { CaptureSession, type CaptureOptions, type CaptureState } from "./capture.js";
export {
  SessionLog,
  buildMeta,
  commandOf,
  keyName,
  newSessionId,
  type CameraPose,
  type CameraSample,
  type InputEvent,
  type LatencyLog,
  type Meta,
  type RttSample,
  type Scenario,
} from "./logs.js";
export {
  PART_ORDER,
  UploadError,
  issuedAt,
  newNonce,
  uploadBundle,
  uploadMessage,
  type PartName,
  type Parts,
  type UploadOptions,
  type UploadProgress,
  type UploadResult,
  type WalletSigner,
} from "./upload.js";
