//! `setup`: the buckets, the queue with its dead-letter queue, and the raw bucket's event
//! notification, on whatever endpoint is configured. Safe to run again. For AWS itself the same
//! resources are a CloudFormation template (`deploy/aws/template.yaml`).

use anyhow::Context as _;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CorsConfiguration, CorsRule, CreateBucketConfiguration, Event,
    NotificationConfiguration, QueueConfiguration,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::args::{Resources, SetupArgs};
use sd_bucket::{describe, Clients};

pub async fn run(clients: &Clients, args: &SetupArgs) -> anyhow::Result<()> {
    let resources = &args.resources;
    for bucket in [&resources.raw_bucket, &resources.clean_bucket] {
        create_bucket(clients, bucket).await?;
        println!("bucket {bucket}: ready");
    }
    if !args.cors_origin.is_empty() {
        allow_browser_uploads(clients, &resources.raw_bucket, &args.cors_origin).await?;
        println!(
            "bucket {}: browsers on {} may PUT parts with presigned URLs",
            resources.raw_bucket,
            args.cors_origin.join(", ")
        );
    }
    let dlq_url = create_queue(
        clients,
        &resources.dead_letter_queue,
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            "1209600".to_owned(),
        )],
    )
    .await?;
    let dlq_arn = queue_arn(clients, &dlq_url).await?;
    println!(
        "dead-letter queue {}: {dlq_url}",
        resources.dead_letter_queue
    );

    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": args.max_receive_count.to_string(),
    });
    let queue_url = create_queue(
        clients,
        &resources.queue,
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                args.visibility_timeout.as_secs().max(1).to_string(),
            ),
            (
                QueueAttributeName::ReceiveMessageWaitTimeSeconds,
                "20".to_owned(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ],
    )
    .await?;
    let queue_arn = queue_arn(clients, &queue_url).await?;
    // S3 may send to the queue only for the raw bucket.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "raw-bucket-events",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": format!("arn:aws:s3:::{}", resources.raw_bucket)}}
        }]
    });
    clients
        .sqs
        .set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(|err| anyhow::anyhow!("cannot set the queue's policy: {}", describe(&err)))?;
    println!(
        "queue {}: {queue_url} (dead letters after {} receives)",
        resources.queue, args.max_receive_count
    );

    let notification = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .id("sd-raw-object-created")
                .queue_arn(&queue_arn)
                .events(Event::S3ObjectCreated)
                .build()
                .context("queue configuration")?,
        )
        .build();
    clients
        .s3
        .put_bucket_notification_configuration()
        .bucket(&resources.raw_bucket)
        .notification_configuration(notification)
        .send()
        .await
        .map_err(|err| {
            anyhow::anyhow!(
                "cannot send {}'s events to the queue: {}",
                resources.raw_bucket,
                describe(&err)
            )
        })?;
    println!(
        "events: every object created in {} -> {}",
        resources.raw_bucket, resources.queue
    );
    Ok(())
}

async fn create_bucket(clients: &Clients, bucket: &str) -> anyhow::Result<()> {
    let region = clients
        .s3
        .config()
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let mut request = clients.s3.create_bucket().bucket(bucket);
    // us-east-1 is the one region that takes no location constraint.
    if region != "us-east-1" {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(err) => {
            let service = err.as_service_error();
            if service
                .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists())
            {
                Ok(())
            } else {
                anyhow::bail!("cannot create bucket {bucket}: {}", describe(&err))
            }
        }
    }
}

/// Creates the queue, or brings an existing one's attributes to these.
async fn create_queue(
    clients: &Clients,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> anyhow::Result<String> {
    let existing = clients.sqs.get_queue_url().queue_name(name).send().await;
    if let Ok(found) = existing {
        let url = found.queue_url().unwrap_or_default().to_owned();
        let mut request = clients.sqs.set_queue_attributes().queue_url(&url);
        for (key, value) in attributes {
            request = request.attributes(key.clone(), value);
        }
        request
            .send()
            .await
            .map_err(|err| anyhow::anyhow!("cannot update queue {name}: {}", describe(&err)))?;
        return Ok(url);
    }
    let mut request = clients.sqs.create_queue().queue_name(name);
    for (key, value) in attributes {
        request = request.attributes(key.clone(), value);
    }
    let created = request
        .send()
        .await
        .map_err(|err| anyhow::anyhow!("cannot create queue {name}: {}", describe(&err)))?;
    created
        .queue_url()
        .map(str::to_owned)
        .context("the queue service answered without a queue URL")
}

pub async fn queue_arn(clients: &Clients, url: &str) -> anyhow::Result<String> {
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|err| anyhow::anyhow!("cannot read {url}'s attributes: {}", describe(&err)))?;
    attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .with_context(|| format!("{url} has no ARN"))
}

/// The raw bucket's CORS rule: the page's origins may `PUT` (the presigned URLs sign the content
/// type and length, so those are the only headers asked for), and read the `ETag`.
async fn allow_browser_uploads(
    clients: &Clients,
    bucket: &str,
    origins: &[String],
) -> anyhow::Result<()> {
    let rule = CorsRule::builder()
        .set_allowed_origins(Some(origins.to_vec()))
        .allowed_methods("PUT")
        .allowed_headers("content-type")
        .expose_headers("ETag")
        .max_age_seconds(3600)
        .build()
        .context("the CORS rule")?;
    let config = CorsConfiguration::builder()
        .cors_rules(rule)
        .build()
        .context("the CORS configuration")?;
    clients
        .s3
        .put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(config)
        .send()
        .await
        .map_err(|err| {
            anyhow::anyhow!("cannot set the CORS rule of {bucket}: {}", describe(&err))
        })?;
    Ok(())
}

/// The resources as one line, for logs.
pub fn describe_resources(resources: &Resources) -> String {
    format!(
        "raw s3://{} -> queue {} (dead letters: {}) -> clean s3://{}",
        resources.raw_bucket, resources.queue, resources.dead_letter_queue, resources.clean_bucket
    )
}
