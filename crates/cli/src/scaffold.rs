//! `init` and `new`: write a working monorepo / service in the seed's layout.
//! The service code is the example monorepo's, so what `init` writes is what the
//! examples prove works.

use crate::Failure;
use crate::args::{Global, InitArgs, Kind, NewArgs};
use crate::commands::find_root;
use crate::output::Out;
use pantstack_model::names;
use std::path::{Path, PathBuf};

/// The scaffold's service code: the example monorepo's api (its own SQS queue, S3
/// bucket and secret through the AWS SDK for Rust; built, tested and run end to
/// end in CI), renamed for the new service by [`service_code`].
const SERVICE_MAIN: &str = include_str!("../../../examples/modules/api/src/main.rs");

/// The example's code, saying `name` wherever it names itself.
pub fn service_code(name: &str) -> String {
    SERVICE_MAIN
        .replace(
            "The example `api` service",
            &format!("The `{name}` service"),
        )
        .replace(
            "(same codebase, `api work`)",
            &format!("(same codebase, `{name} work`)"),
        )
        .replace("//! api serve ", &format!("//! {name} serve "))
        .replace("//! api work ", &format!("//! {name} work "))
        .replace(
            "eprintln!(\"api: {e}\")",
            &format!("eprintln!(\"{name}: {{e}}\")"),
        )
        .replace(
            "unwrap_or_else(|_| \"api\".into())",
            &format!("unwrap_or_else(|_| \"{name}\".into())"),
        )
        .replace(
            "usage: api [serve|work]",
            &format!("usage: {name} [serve|work]"),
        )
}

/// The crates the service uses, at the versions this workspace builds and tests.
const SERVICE_DEPENDENCIES: &str = r#"tokio = { version = "1", default-features = false, features = ["rt-multi-thread", "signal"] }
serde_json = "1"
aws-config = { version = "1", default-features = false, features = ["rt-tokio", "behavior-version-latest", "default-https-client"] }
aws-sdk-sqs = { version = "1", default-features = false, features = ["rt-tokio", "default-https-client"] }
aws-sdk-s3 = { version = "1", default-features = false, features = ["rt-tokio", "default-https-client"] }
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Http,
    Worker,
    Both,
}

struct Plan {
    files: Vec<(PathBuf, String, bool)>,
}

impl Plan {
    fn add(&mut self, path: impl Into<PathBuf>, content: String) {
        self.files.push((path.into(), content, false));
    }

    fn add_exec(&mut self, path: impl Into<PathBuf>, content: String) {
        self.files.push((path.into(), content, true));
    }

    fn write(&self, root: &Path) -> Result<(), Failure> {
        for (rel, content, exec) in &self.files {
            let path = root.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Failure::Io(format!("cannot create {}: {e}", parent.display())))?;
            }
            std::fs::write(&path, content)
                .map_err(|e| Failure::Io(format!("cannot write {}: {e}", path.display())))?;
            if *exec {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| {
                            Failure::Io(format!("cannot chmod {}: {e}", path.display()))
                        })?;
                }
            }
        }
        Ok(())
    }
}

fn foundation_manifest(project: &str, region: &str, github: Option<(&str, &str)>) -> String {
    let github = match github {
        Some((owner, repo)) => format!("github:\n  owner: {owner}\n  repo: {repo}\n"),
        None => "# github:          # the repository whose workflows may deploy (OIDC trust)\n#   owner: your-org\n#   repo: your-repo\n".to_string(),
    };
    format!(
        "# The foundation layer: ECR repository, GitHub OIDC, CI role, shared VPC.
project: {project}
region: {region}
registry:
  name: {project}
  keep_images: 20
{github}environments:
  test:
    branch: dev
  prod:
    branch: main
network:
  cidr: 10.0.0.0/16
  azs: 2
  nat: single
previews:
  max: 5
  ttl: 7d
"
    )
}

fn stack_file(env: &str, region: &str, foundation: bool) -> String {
    let mut s = format!("config:\n  aws:region: {region}\n  pantstack:environment: {env}\n");
    if !foundation {
        let (min, max) = if env == "prod" { (2, 10) } else { (1, 3) };
        s.push_str(&format!(
            "  pantstack:minCapacity: {min}\n  pantstack:maxCapacity: {max}\n"
        ));
    }
    s
}

fn service_manifest(name: &str, role: Role) -> String {
    let mut s = format!(
        "# The {name} service. `pantstack config {name} --env test` shows every setting.
service: {name}
image:
  dockerfile: Dockerfile
  context: .
  build: ./build.sh
cpu: 256
memory: 512
# The local cloud builds each revision first (`building`, with its own log), keeps
# the binary with the revision and runs its tasks from it.
local:
  build: ./build.sh --local
"
    );
    if role != Role::Worker {
        s.push_str(&format!(
            "http:
  port: 8080
  command: [\"/{name}\", \"serve\"]
  local: $PANTSTACK_ARTIFACTS/{name} serve
  healthcheck:
    path: /healthz
"
        ));
    }
    if role != Role::Http {
        s.push_str(&format!(
            "worker:
  queue: jobs
  command: [\"/{name}\", \"work\"]
  local: $PANTSTACK_ARTIFACTS/{name} work
"
        ));
    }
    s.push_str("scaling:\n  min: 1\n  max: 10\n  cpu: 70\n");
    if role == Role::Http {
        s.push_str("# POST /jobs sends to this queue; add `worker:` (as `pantstack init` does for api)\n# to process them in this service.\n");
    }
    s.push_str("queues:\n  jobs:\n    visibility_timeout: 60s\n    dead_letter:\n      max_receive_count: 3\n");
    s.push_str("buckets:\n  results:\n    versioning: true\n    noncurrent_expiry_days: 30\n");
    if role != Role::Worker {
        s.push_str(&format!("secrets:\n  API_TOKEN:\n    rotation_days: 90\n    description: Token clients present to {name}'s POST /jobs\n"));
    }
    s.push_str("variables:\n  LOG_LEVEL: info\n  JOBS_QUEUE_URL: ${queue:jobs}\n  RESULTS_BUCKET: ${bucket:results}\n");
    s
}

fn add_service(
    plan: &mut Plan,
    project: &str,
    name: &str,
    role: Role,
    envs: &[String],
    region: &str,
) {
    let dir = PathBuf::from("modules").join(name);
    let desc = match role {
        Role::Http => "HTTP service",
        Role::Worker => "queue worker",
        Role::Both => "HTTP service and its worker",
    };
    plan.add(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[[bin]]\nname = \"{name}\"\npath = \"src/main.rs\"\n\n[dependencies]\n{SERVICE_DEPENDENCIES}"
        ),
    );
    plan.add(dir.join("src/main.rs"), service_code(name));
    let (port, cmd) = if role == Role::Worker {
        (8081, "work")
    } else {
        (8080, "serve")
    };
    plan.add(
        dir.join("Dockerfile"),
        format!(
            "# FROM scratch around a statically linked binary: build.sh compiles it into .build/{name}.
FROM scratch
COPY .build/{name} /{name}
USER 65534:65534
EXPOSE {port}
ENTRYPOINT [\"/{name}\"]
CMD [\"{cmd}\"]
"
        ),
    );
    plan.add_exec(
        dir.join("build.sh"),
        format!(
            "#!/bin/sh
# Builds the {name} binary.
#   ./build.sh           the statically linked release binary the Dockerfile copies into
#                        a FROM scratch image (`image.build`)
#   ./build.sh --local   the local cloud's build phase (`local.build`): a debug build,
#                        copied into $PANTSTACK_ARTIFACTS, kept with the revision
set -eu
cd \"$(dirname \"$0\")\"
target_dir() {{
  cargo metadata --format-version 1 --no-deps --manifest-path Cargo.toml \\
    | sed -n 's/.*\"target_directory\":\"\\([^\"]*\\)\".*/\\1/p'
}}
if [ \"${{1:-}}\" = \"--local\" ]; then
  : \"${{PANTSTACK_ARTIFACTS:?run by the local cloud, which sets PANTSTACK_ARTIFACTS}}\"
  cargo build --manifest-path Cargo.toml --bin {name}
  cp \"$(target_dir)/debug/{name}\" \"$PANTSTACK_ARTIFACTS/{name}\"
  exit 0
fi
RUSTFLAGS='-C target-feature=+crt-static' \\
  cargo build --release --target x86_64-unknown-linux-gnu --manifest-path Cargo.toml --bin {name}
mkdir -p .build
cp \"$(target_dir)/x86_64-unknown-linux-gnu/release/{name}\" .build/{name}
chmod 0755 .build/{name}
"
        ),
    );
    plan.add(dir.join(".dockerignore"), format!("*\n!.build/{name}\n"));
    plan.add(dir.join(".gitignore"), ".build/\n".into());
    let infra = dir.join("infrastructure");
    plan.add(
        infra.join("Pulumi.yaml"),
        format!(
            "name: {project}-{name}\nruntime: python\ndescription: {name} {desc} infrastructure\n"
        ),
    );
    for env in envs {
        plan.add(
            infra.join(format!("Pulumi.{env}.yaml")),
            stack_file(env, region, false),
        );
    }
    plan.add(infra.join("pantstack.yaml"), service_manifest(name, role));
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

pub fn init(out: &Out, a: &InitArgs) -> Result<(), Failure> {
    if a.dir.exists() && !is_empty_dir(&a.dir) {
        return Err(Failure::Usage(format!(
            "{} already exists and is not empty; choose a new directory",
            a.dir.display()
        )));
    }
    let dir_name = a
        .dir
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .unwrap_or_else(|| "project".into());
    let project = match &a.project {
        Some(p) => p.clone(),
        None => names::suggest_label(&dir_name, names::MAX_PROJECT_NAME),
    };
    names::check_label(&project, "project", names::MAX_PROJECT_NAME)
        .map_err(|e| Failure::Usage(format!("{e}; pass --project NAME")))?;
    pantstack_model::foundation::check_region(&a.region).map_err(Failure::Usage)?;
    let github = match &a.github {
        Some(g) => {
            let (o, r) = g
                .split_once('/')
                .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
                .ok_or_else(|| Failure::Usage(format!("--github `{g}` must be OWNER/REPO")))?;
            Some((o.to_string(), r.to_string()))
        }
        None => None,
    };
    let envs = vec!["test".to_string(), "prod".to_string()];
    let mut plan = Plan { files: Vec::new() };
    plan.add(
        "Cargo.toml",
        "[workspace]\nresolver = \"2\"\nmembers = [\"modules/*\"]\n".into(),
    );
    plan.add(".gitignore", "/target\n.pantstack/\n.build/\n".into());
    plan.add(
        "README.md",
        format!(
            "# {project}\n\nA Pantstack monorepo.\n\n```sh\npantstack check                # validate everything\npantstack env --branch dev     # which environment dev deploys to\npantstack config api --env test\npantstack new billing --kind http\npantstack up                   # every service on this machine behind its load balancer\npantstack synth --env test      # CloudFormation templates → .pantstack/synth/test/\n```\n"
        ),
    );
    let fdir = PathBuf::from("stack/infra/foundation");
    plan.add(
        fdir.join("Pulumi.yaml"),
        format!("name: {project}-foundation\nruntime: python\ndescription: Shared foundation (ECR, GitHub OIDC, CI role, VPC)\n"),
    );
    plan.add(
        fdir.join("pantstack.yaml"),
        foundation_manifest(
            &project,
            &a.region,
            github.as_ref().map(|(o, r)| (o.as_str(), r.as_str())),
        ),
    );
    for env in &envs {
        plan.add(
            fdir.join(format!("Pulumi.{env}.yaml")),
            stack_file(env, &a.region, true),
        );
    }
    add_service(&mut plan, &project, "api", Role::Both, &envs, &a.region);
    plan.write(&a.dir)?;
    if !out.json() {
        println!(
            "created {} (project {project}) with service `api` (HTTP + worker)",
            a.dir.display()
        );
        println!(
            "next: cd {} && pantstack check && pantstack env --branch dev",
            a.dir.display()
        );
    } else {
        let files: Vec<String> = plan
            .files
            .iter()
            .map(|(p, _, _)| p.display().to_string())
            .collect();
        println!(
            "{}",
            serde_json::json!({"created": a.dir.display().to_string(), "project": project, "files": files})
        );
    }
    Ok(())
}

pub fn new_service(global: &Global, out: &Out, a: &NewArgs) -> Result<(), Failure> {
    names::check_service_name(&a.name).map_err(|e| {
        let suggested = names::suggest_label(&a.name, names::MAX_SERVICE_NAME);
        // A reserved name is already a valid label: suggest another.
        match names::check_service_name(&suggested) {
            Ok(()) => Failure::Usage(format!("{e}; try `{suggested}`")),
            Err(_) => Failure::Usage(format!("{e}; choose another name")),
        }
    })?;
    let root = find_root(global)?;
    if root.join("modules").join(&a.name).exists() {
        return Err(Failure::Usage(format!("modules/{} already exists", a.name)));
    }
    let loaded = pantstack_model::load(&root);
    let repo = &loaded.repo;
    let envs: Vec<String> = repo
        .foundation
        .env_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let region = repo
        .region_for(envs.first().map(String::as_str).unwrap_or("test"))
        .map(|(r, _)| r)
        .unwrap_or_else(|| "us-east-1".into());
    let role = match a.kind {
        Kind::Http => Role::Http,
        Kind::Worker => Role::Worker,
    };
    let mut plan = Plan { files: Vec::new() };
    add_service(
        &mut plan,
        &repo.foundation.project.value,
        &a.name,
        role,
        &envs,
        &region,
    );
    plan.write(&root)?;
    if out.json() {
        let files: Vec<String> = plan
            .files
            .iter()
            .map(|(p, _, _)| p.display().to_string())
            .collect();
        println!("{}", serde_json::json!({"service": a.name, "files": files}));
    } else {
        println!(
            "created modules/{} ({:?}); stack files for: {}",
            a.name,
            a.kind,
            envs.join(", ")
        );
        println!(
            "next: pantstack check && pantstack config {} --env {}",
            a.name,
            envs.first().map(String::as_str).unwrap_or("test")
        );
    }
    Ok(())
}
