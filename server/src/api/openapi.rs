//! The API's OpenAPI document, derived with utoipa from the handlers' annotations and the types
//! they answer with, so that it cannot describe a field the server does not send.
//! `docs/openapi.json` is this document as `scale-diffusion-server openapi` prints it; a test
//! fails when the two differ, and every router test checks its response against it.

use utoipa::OpenApi;

use super::error::ErrorCode;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Scale Diffusion upload API",
        version = "1",
        description = "Where a contributor's browser gets presigned PUT URLs for a session's five \
parts, each good for one key, one content type and one length (SPEC section 9), and sees what became \
of its sessions. A wallet proves it is the caller by signing the request with its ed25519 key.\n\n\
Every error answers `{\"error\": {\"code\", \"message\"}}` with a stable code. Any other path answers \
404 `not_found`, any other method on these paths 405 `method_not_allowed`. The game's page origins \
(`--cors-origin`) may call the API from a browser.",
        license(name = "Proprietary"),
    ),
    paths(
        super::uploads::create_uploads,
        super::sessions::session_status,
        super::healthz,
        super::readyz,
    ),
    components(schemas(ErrorCode, super::uploads::PartRequest)),
    tags(
        (name = "uploads", description = "Presigned PUT URLs for a session's parts"),
        (name = "sessions", description = "What became of a contributor's session"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// The document as pretty JSON with a final newline, as `docs/openapi.json` holds it.
pub fn document() -> serde_json::Result<String> {
    let mut json = ApiDoc::openapi().to_pretty_json()?;
    json.push('\n');
    Ok(json)
}
