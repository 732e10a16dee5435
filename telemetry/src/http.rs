//! The OTLP exporter's HTTP client: ureq, blocking, on the exporter's own thread. The SDK's
//! batch processor runs each export on that thread (`block_on`), so a blocking client costs
//! nothing there and keeps an async runtime and reqwest out of the offline CLI.

use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// A collector's answer is a small protobuf: more than this is not read.
const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

#[derive(Debug)]
pub(crate) struct BlockingClient {
    agent: ureq::Agent,
}

impl BlockingClient {
    /// Every request, connection and answer included, ends within `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self { agent }
    }
}

#[async_trait::async_trait]
impl HttpClient for BlockingClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.to_vec());
        let response = self.agent.run(request)?;
        let (parts, mut body) = response.into_parts();
        let bytes = body.with_config().limit(MAX_RESPONSE_BYTES).read_to_vec()?;
        Ok(Response::from_parts(parts, Bytes::from(bytes)))
    }
}
