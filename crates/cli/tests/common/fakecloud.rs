//! fakecloud (a local AWS emulator; AGPL-3.0, a test tool only: installed by
//! .ci/run, never a dependency) on a loopback port of its own, for the aws target's
//! end-to-end tests, behind the adapter crate (`pantstack-fakecloud-adapter`: where
//! the emulator deviates from AWS, the adaptation is there, in its `DEVIATIONS`,
//! with the evidence — never in the templates or in pantstack).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct FakeCloud {
    child: Child,
    /// fakecloud's own port (its ECR registry and ALB data planes are reached here).
    pub port: u16,
    /// The rewriting proxy's port: every AWS API call of pantstack goes here.
    pub api_port: u16,
    pub log: PathBuf,
    /// Every AWS API call through the adapter, when the test asked for it
    /// (`start_recording`; also in `<dir>/aws-calls.jsonl`).
    pub recorder: Option<std::sync::Arc<pantstack_fakecloud_adapter::record::Recorder>>,
}

/// The installed binary: `PANTSTACK_FAKECLOUD`, else where .ci/run installs it.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("PANTSTACK_FAKECLOUD") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cache = std::env::var("PANTSTACK_CI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(home).join(".cache/pantstack-ci"));
    cache.join("fakecloud-0.51.0/bin/fakecloud")
}

fn free_port() -> u16 {
    // The emulator takes an address, not a listener: a port the kernel just chose.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("addr").port()
}

impl FakeCloud {
    pub fn start(dir: &std::path::Path) -> FakeCloud {
        FakeCloud::start_with(dir, false)
    }

    /// As `start`, recording every AWS API call (`common::iam_check`).
    pub fn start_recording(dir: &std::path::Path) -> FakeCloud {
        FakeCloud::start_with(dir, true)
    }

    fn start_with(dir: &std::path::Path, record: bool) -> FakeCloud {
        let bin = binary();
        assert!(
            bin.is_file(),
            "fakecloud is not installed at {} (.ci/run installs it: cargo install fakecloud --locked --version 0.51.0 --debug --root ~/.cache/pantstack-ci/fakecloud-0.51.0); PANTSTACK_FAKECLOUD names another",
            bin.display()
        );
        let port = free_port();
        let log = dir.join("fakecloud.log");
        let file = std::fs::File::create(&log).expect("fakecloud log");
        let child = Command::new(&bin)
            .args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--storage-mode",
                "memory",
            ])
            .env("FAKECLOUD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start fakecloud");
        let l = TcpListener::bind("127.0.0.1:0").expect("bind the adapter");
        let api_port = l.local_addr().expect("addr").port();
        let recorder = record.then(|| {
            std::sync::Arc::new(
                pantstack_fakecloud_adapter::record::Recorder::new(Some(
                    &dir.join("aws-calls.jsonl"),
                ))
                .expect("the recording's file"),
            )
        });
        pantstack_fakecloud_adapter::serve_recording(l, port, recorder.clone());
        let fc = FakeCloud {
            child,
            port,
            api_port,
            log,
            recorder,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(
                    b"GET /_fakecloud/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                );
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    return fc;
                }
            }
            assert!(
                Instant::now() < deadline,
                "fakecloud did not answer its health check within 60 s (log: {})",
                fc.log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The AWS endpoint pantstack uses (through the proxy).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The environment a command needs to reach it (and nothing else).
    pub fn vars(&self, docker_config: &std::path::Path) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.url()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("PANTSTACK_AWS_POLL_MS".into(), "250".into()),
            ("PANTSTACK_AWS_TIMEOUT_S".into(), "120".into()),
            ("DOCKER_CONFIG".into(), docker_config.display().to_string()),
        ]
    }

    pub fn log_tail(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        let label = format!("label=fakecloud-instance=fakecloud-{}", self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its ECS tasks' containers and networks outlive it: remove them.
        let docker = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default()
        };
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut nets = Vec::new();
            for id in &ids {
                let t = docker(&[
                    "inspect",
                    "--format",
                    "{{index .Config.Labels \"fakecloud-ecs-task\"}}",
                    id,
                ]);
                if !t.trim().is_empty() {
                    nets.push(format!("fakecloud-ecs-{}", t.trim()));
                }
            }
            let mut rm = vec!["rm", "-f"];
            rm.extend(ids.iter().copied());
            docker(&rm);
            nets.sort();
            nets.dedup();
            for n in &nets {
                docker(&["network", "rm", n]);
            }
        }
    }
}

/// The loopback port of the ALB data plane serving `url` (what `deploy` prints),
/// from the emulator's own listing — what `fakecloud-adapter urls` shows users.
pub fn data_plane_port(fc: &FakeCloud, url: &str) -> Option<u16> {
    // The emulator opens an ALB's listener after CloudFormation reports the
    // stack complete: give it a moment (bounded) before saying it has none.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let port = pantstack_fakecloud_adapter::data_plane_port(fc.port, url);
        if port.is_some() || std::time::Instant::now() >= deadline {
            return port;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// The images of this emulator's running task containers.
pub fn running_images(fc: &FakeCloud) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "--filter",
            &format!("label=fakecloud-instance=fakecloud-{}", fc.child.id()),
            "--format",
            "{{.Image}}",
        ])
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    out.lines().map(str::to_string).collect()
}
