//! The Kubernetes manifests of `deploy/k8s/` against the binary they run: every flag and `SD_*`
//! variable they give a command exists in that command, the workers' stop timeout covers their
//! grace period, KEDA scales the worker Deployment on the queue the workers read, the API's
//! port, probes and Service agree, and every volume a container mounts is declared.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{workspace_root, SERVER};
use yaml_rust2::{Yaml, YamlLoader};

fn k8s_dir() -> std::path::PathBuf {
    workspace_root().join("deploy").join("k8s")
}

/// Every document of every file kustomization.yaml lists; each file in the folder is listed.
fn documents() -> Vec<Yaml> {
    let dir = k8s_dir();
    let kustomization = load(&dir.join("kustomization.yaml"));
    let listed: Vec<String> = kustomization[0]["resources"]
        .as_vec()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file name").to_owned())
        .collect();
    for entry in std::fs::read_dir(&dir).expect("deploy/k8s") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(
                listed.contains(&name),
                "{name} is not in kustomization.yaml"
            );
        }
    }
    listed
        .iter()
        .flat_map(|name| load(&dir.join(name)))
        .collect()
}

fn load(path: &Path) -> Vec<Yaml> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn text(yaml: &Yaml) -> String {
    match yaml {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        other => panic!("not text: {other:?}"),
    }
}

/// `scale-diffusion-server COMMAND --help`.
fn help(command: &str) -> String {
    let out = Command::new(SERVER)
        .args([command, "--help"])
        .output()
        .expect("run the server's help");
    assert!(out.status.success(), "{command} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one container of a Deployment: its command's help, its flags and its SD_* variables
/// (its own and its ConfigMaps'), checked against that help; returns the flags with their values.
fn check_container(docs: &[Yaml], deployment: &str) -> BTreeMap<String, String> {
    let spec = &of_kind(docs, "Deployment", deployment)["spec"]["template"]["spec"];
    let containers = spec["containers"].as_vec().expect("containers");
    assert_eq!(containers.len(), 1, "{deployment}");
    let container = &containers[0];
    let args: Vec<String> = container["args"]
        .as_vec()
        .expect("args")
        .iter()
        .map(text)
        .collect();
    let command = &args[0];
    let help = help(command);
    let mut flags = BTreeMap::new();
    let mut rest = args[1..].iter().peekable();
    while let Some(arg) = rest.next() {
        assert!(arg.starts_with("--"), "{deployment}: {arg} is not a flag");
        assert!(
            help.contains(&format!("{arg} ")),
            "{deployment}: `{command}` has no {arg}"
        );
        let value = rest
            .next_if(|v| !v.starts_with("--"))
            .cloned()
            .unwrap_or_default();
        flags.insert(arg.clone(), value);
    }
    let mut variables: Vec<String> = container["env"]
        .as_vec()
        .into_iter()
        .flatten()
        .map(|e| text(&e["name"]))
        .collect();
    for from in container["envFrom"].as_vec().into_iter().flatten() {
        let map = text(&from["configMapRef"]["name"]);
        let data = of_kind(docs, "ConfigMap", &map)["data"]
            .as_hash()
            .expect("data");
        variables.extend(data.keys().map(text));
    }
    for variable in variables.iter().filter(|v| v.starts_with("SD_")) {
        // `[env: SD_X=value]`, or `[env: SD_X]` when the help hides the value.
        assert!(
            help.contains(&format!("env: {variable}="))
                || help.contains(&format!("env: {variable}]")),
            "{deployment}: `{command}` reads no {variable}"
        );
    }
    assert!(
        variables.iter().any(|v| v == "SD_LEDGER"),
        "{deployment}: no ledger"
    );
    // Every mount has its volume.
    let volumes: Vec<String> = spec["volumes"]
        .as_vec()
        .into_iter()
        .flatten()
        .map(|v| text(&v["name"]))
        .collect();
    for mount in container["volumeMounts"].as_vec().into_iter().flatten() {
        let name = text(&mount["name"]);
        assert!(volumes.contains(&name), "{deployment}: no volume {name}");
    }
    flags
}

#[test]
fn the_kubernetes_manifests_agree_with_the_binary() {
    let docs = documents();

    let worker = check_container(&docs, "sd-worker");
    let grace = humantime::parse_duration(&worker["--grace"]).expect("--grace");
    let stop = of_kind(&docs, "Deployment", "sd-worker")["spec"]["template"]["spec"]
        ["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        Duration::from_secs(stop as u64) >= grace + Duration::from_secs(10),
        "the pod is killed {stop} s after SIGTERM, too soon after --grace {grace:?}"
    );
    let lease = humantime::parse_duration(&worker["--lease"]).expect("--lease");
    let heartbeat = humantime::parse_duration(&worker["--heartbeat"]).expect("--heartbeat");
    assert!(
        heartbeat * 3 <= lease,
        "a lease must outlive a few heartbeats"
    );

    // KEDA scales the workers on their queue.
    let scaled = of_kind(&docs, "ScaledObject", "sd-worker");
    assert_eq!(text(&scaled["spec"]["scaleTargetRef"]["name"]), "sd-worker");
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(text(&trigger["type"]), "aws-sqs-queue");
    let queue = text(&of_kind(&docs, "ConfigMap", "sd-resources")["data"]["SD_QUEUE"]);
    assert_eq!(text(&trigger["metadata"]["queueURL"]), queue);
    let auth = text(&trigger["authenticationRef"]["name"]);
    of_kind(&docs, "TriggerAuthentication", &auth);

    // The API: listens where the probes and the Service look.
    check_container(&docs, "sd-api");
    let api = &of_kind(&docs, "Deployment", "sd-api")["spec"]["template"]["spec"]["containers"][0];
    let listen = api["env"]
        .as_vec()
        .expect("env")
        .iter()
        .find(|e| e["name"].as_str() == Some("SD_API_LISTEN"))
        .map(|e| text(&e["value"]))
        .expect("SD_API_LISTEN");
    let port: i64 = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    assert_eq!(api["ports"][0]["containerPort"].as_i64(), Some(port));
    let service = of_kind(&docs, "Service", "sd-api");
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_i64(),
        Some(port)
    );
    let openapi = std::fs::read_to_string(workspace_root().join("docs/openapi.json"))
        .expect("docs/openapi.json");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            api[probe]["httpGet"]["port"].as_i64(),
            Some(port),
            "{probe}"
        );
        let path = text(&api[probe]["httpGet"]["path"]);
        assert!(
            openapi.contains(&format!("\"{path}\"")),
            "{probe}: no {path} in the API"
        );
    }
}
