//! The S3 and SQS clients, configured as every AWS SDK is: `AWS_ENDPOINT_URL` (an emulator on
//! 127.0.0.1 in tests and in the local stack; `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL_SQS` for
//! one service alone), `AWS_REGION`, the default credentials chain.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;

/// Both clients, sharing one loaded configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    /// Loads the SDK configuration from the environment. Requests are retried with exponential
    /// backoff for about a minute (an endpoint that restarts or stalls for a while loses
    /// nothing); one attempt may take 60 s (long polls take 20), or `SD_AWS_ATTEMPT_TIMEOUT`
    /// (e.g. `5s`: the fault tests make a stalled endpoint's requests time out and retry).
    pub async fn from_env() -> Self {
        let attempt = std::env::var("SD_AWS_ATTEMPT_TIMEOUT")
            .ok()
            .and_then(|text| humantime::parse_duration(&text).ok())
            .unwrap_or(Duration::from_secs(60));
        let config = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(8)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(15)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(attempt)
                    .build(),
            )
            .load()
            .await;
        // An emulator (an endpoint URL set, for all services or for S3 alone) serves buckets by
        // path, not by host name.
        let path_style =
            config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(path_style)
                // Uploads carry the manifest's SHA-256 themselves; no CRC32 on top of it.
                .request_checksum_calculation(
                    aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                )
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::new(&config);
        Self { s3, sqs }
    }
}

/// An SDK error with its service message and code, as one line (the SDK's own `Display` says
/// only "service error").
pub fn describe<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        aws_sdk_s3::error::SdkError::ServiceError(service) => {
            let inner = service.err();
            format!(
                "{} ({})",
                inner.message().unwrap_or("no message"),
                inner.code().unwrap_or("no code")
            )
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}
