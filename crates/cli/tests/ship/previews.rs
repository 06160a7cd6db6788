//! Previews end to end on fakecloud, and the generated preview workflow's scripts.

use crate::common::{fakecloud::FakeCloud, text};
use crate::{Repo, check_ci_role, deployed, epoch, forged_lock, stack};
use std::path::Path;
use std::process::Command;

/// Previews end to end: their secrets come from the declared preview values, the
/// cap refuses one more (naming the oldest) unless asked to replace it, the TTL
/// (judged by a controllable clock) destroys an idle one, and a teardown leaves
/// nothing: no stack, no bucket or its data, no parameter, no image.
#[test]
fn previews_secrets_cap_ttl_and_teardown_on_fakecloud() {
    let base = std::env::temp_dir().join(format!(
        "pantstack-fakecloud-previews-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&base).expect("mkdir");
    let fc = FakeCloud::start_recording(&base);
    let repo = Repo::new("previews", &fc);
    let m = repo.root.join("stack/infra/foundation/pantstack.yaml");
    let t = std::fs::read_to_string(&m).expect("foundation manifest");
    assert!(
        t.contains("\n  max: 5\n"),
        "the example's previews.max changed"
    );
    std::fs::write(&m, t.replace("\n  max: 5\n", "\n  max: 1\n")).expect("write");
    repo.commit("one preview at a time");

    let v = repo.json(&["bootstrap", "--pr", "1"], &fc);
    assert_eq!(
        stack(&v, "shop-preview-foundation")["result"],
        "created",
        "{v:#}"
    );
    let template_bucket = v["template_bucket"]
        .as_str()
        .unwrap_or_else(|| panic!("no template bucket: {v:#}"))
        .to_string();
    let foundation = deployed(&fc);

    // A secret with no preview value: refused, naming the command that sets it.
    let o = repo.run(&["preview", "up", "--pr", "7"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("pantstack secrets set --target aws --env preview api API_TOKEN"),
        "{}",
        text(&o.stderr)
    );
    let o = repo.run_input(
        &[
            "secrets",
            "set",
            "api",
            "API_TOKEN",
            "--target",
            "aws",
            "--env",
            "preview",
        ],
        Some("preview-token-value"),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("/shop/preview/api/API_TOKEN"),
        "{}",
        text(&o.stdout)
    );

    // The cap counts the slots other `preview up` runs claimed (under the
    // previews' lock, before any stack of theirs exists), not only stacks: at
    // max 1, 7 is refused naming preview-99, which has no stack yet.
    let claim = format!("/{template_bucket}/shop-preview-activity-99.json");
    let stamp = serde_json::json!({ "pr": 99, "at": epoch(), "by": "ci-run-77", "verb": "claim" });
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &claim,
        &stamp.to_string()
    ));
    let o = repo.run(&["preview", "up", "--pr", "7"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("preview-99") && err.contains("--replace-oldest"),
        "{err}"
    );
    let v = repo.json(&["preview", "list"], &fc);
    assert_eq!(v["previews"][0]["pr"], 99, "{v:#}");
    assert_eq!(v["previews"][0]["stacks"], serde_json::json!([]), "{v:#}");
    // --replace-oldest judges the oldest again holding its deploy lock: one
    // whose deploy runs is active, so it is kept, and with no other to replace
    // `up` is refused; nothing is destroyed.
    let lock99 = format!("/{template_bucket}/shop-preview-99-deploy-lock.json");
    let running = |expires: u64| forged_lock("ci-run-99", "deploy", expires);
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &lock99,
        &running(epoch() + 3600)
    ));
    let o = repo.run(&["preview", "up", "--pr", "7", "--replace-oldest"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let said = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        said.contains("preview-99 kept: locked by ci-run-99 (deploy)")
            && said.contains("none was replaced"),
        "{said}"
    );
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &claim).is_some());
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &lock99,
        &running(epoch() - 1)
    ));
    // Its teardown gives the slot back.
    let o = repo.run(&["preview", "down", "--pr", "99", "--yes"]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &claim).is_none());

    // While another run holds the previews' lock (counting and claiming), `up`
    // is refused naming it; an expired one is taken over, and released after.
    let slots = format!("/{template_bucket}/shop-preview-slots-deploy-lock.json");
    let other = |expires: u64| forged_lock("ci-run-78", "preview up", expires);
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &slots,
        &other(epoch() + 3600)
    ));
    let o = repo.run(&["preview", "up", "--pr", "7"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("previews of `shop` are locked by ci-run-78 (preview up) since")
            && err.contains("--lock-wait"),
        "{err}"
    );
    assert!(
        err.contains("pantstack unlock --previews"),
        "the refusal names the way out: {err}"
    );
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &claim.replace("-99", "-7")).is_none());
    // `unlock --previews` shows the holder and asks (--yes without a
    // terminal), then removes exactly that lock.
    let o = repo.run(&["unlock", "--previews"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("the previews of `shop` are locked by ci-run-78 (preview up)"),
        "{}",
        text(&o.stderr)
    );
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &slots).is_some());
    let v = repo.json(&["unlock", "--previews", "--yes"], &fc);
    assert_eq!(v["removed"]["owner"], "ci-run-78", "{v:#}");
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &slots).is_none());
    let o = repo.run(&["unlock", "--previews", "--yes"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("the previews of `shop` are not locked"),
        "{}",
        text(&o.stdout)
    );
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &slots,
        &other(epoch() - 1)
    ));

    // Up: every service, the secret copied to the preview's own parameter.
    let v = repo.json(&["preview", "up", "--pr", "7"], &fc);
    assert!(pantstack_fakecloud_adapter::s3_get(fc.port, &slots).is_none());
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(
        stack(&v, "shop-preview-7-api")["result"],
        "created",
        "{v:#}"
    );
    assert_eq!(
        stack(&v, "shop-preview-7-reports")["result"],
        "created",
        "{v:#}"
    );
    let bucket = stack(&v, "shop-preview-7-api")["outputs"]["ResultsBucketName"]
        .as_str()
        .expect("ResultsBucketName")
        .to_string();
    let v = repo.json(
        &["secrets", "list", "--target", "aws", "--env", "preview-7"],
        &fc,
    );
    assert_eq!(v[0]["parameter"], "/shop/preview-7/api/API_TOKEN", "{v:#}");
    assert_eq!(v[0]["set"], true, "{v:#}");
    // What the preview runs is HEAD: nothing to deploy; a commit to reports
    // makes reports differ from what it runs.
    let first = git_out(&repo.root, &["rev-list", "--max-parents=0", "HEAD"]);
    let o = repo.run(&["changed", "--deployed", "--env", "preview-7"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "", "{}", text(&o.stderr));
    let main_rs = repo.root.join("modules/reports/src/main.rs");
    let mut code = std::fs::read_to_string(&main_rs).expect("reports source");
    code.push_str("\n// a change\n");
    std::fs::write(&main_rs, code).expect("write");
    repo.commit("change reports");
    let o = repo.run(&["changed", "--deployed", "--env", "preview-7"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "reports\n", "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("changed since"),
        "{}",
        text(&o.stderr)
    );
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &format!("/{bucket}/results/1.json"),
        "{\"ok\":1}"
    ));

    let v = repo.json(&["preview", "list"], &fc);
    let previews = v["previews"].as_array().expect("previews");
    assert_eq!(previews.len(), 1, "{v:#}");
    assert_eq!(previews[0]["pr"], 7, "{v:#}");
    assert_eq!(previews[0]["expired"], false, "{v:#}");
    assert_eq!(v["max"], 1, "{v:#}");

    // The cap: one more is refused, naming the oldest and both ways out.
    let o = repo.run(&["preview", "up", "--pr", "8"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("preview-7")
            && err.contains("--replace-oldest")
            && err.contains("preview down --pr 7"),
        "{err}"
    );
    // Chosen: the oldest goes (with its data, parameters and images), 8 comes.
    let o = repo.run(&["preview", "up", "--pr", "8", "--replace-oldest"]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let out = text(&o.stdout);
    assert!(
        out.contains("shop-preview-7-api") && out.contains("deleted"),
        "{out}"
    );
    assert!(out.contains("shop-preview-8-api"), "{out}");
    // What the checks workflow runs on a pull request (as the previews' CI role).
    let v = repo.json(&["diff", "--pr", "8"], &fc);
    assert!(
        v["stacks"].as_array().is_some_and(|s| !s.is_empty()),
        "{v:#}"
    );
    assert!(
        pantstack_fakecloud_adapter::s3_get(fc.port, &format!("/{bucket}/results/1.json"))
            .is_none(),
        "preview-7's bucket and its data are gone"
    );
    let v = repo.json(
        &["secrets", "list", "--target", "aws", "--env", "preview-7"],
        &fc,
    );
    assert_eq!(v[0]["set"], false, "preview-7's parameter is gone: {v:#}");

    // A push that changes nothing is activity all the same: `up` eight days on
    // (past the 7d TTL; nothing to deploy, 8 runs HEAD) marks 8 active then, so
    // gc then leaves it although its stacks last changed eight days before.
    let later = (epoch() + 8 * 86_400).to_string();
    let at_later = [("PANTSTACK_NOW", later.as_str())];
    let v = repo.json_with(&["preview", "up", "--pr", "8"], &at_later, &fc);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(
        stack(&v, "shop-preview-8-api")["result"],
        "unchanged",
        "{v:#}"
    );
    let v = repo.json_with(&["preview", "list"], &at_later, &fc);
    assert_eq!(v["previews"][0]["idle_seconds"], 0, "{v:#}");
    assert_eq!(v["previews"][0]["expired"], false, "{v:#}");
    let o = repo.run_with(&["preview", "gc", "--dry-run"], None, &at_later);
    assert!(
        text(&o.stdout).contains("no preview has been idle"),
        "{}",
        text(&o.stdout)
    );

    // The TTL, judged at a later time: dry run, refusal without --yes, then gc.
    let later = (epoch() + 16 * 86_400).to_string();
    let clock = [("PANTSTACK_NOW", later.as_str())];
    let o = repo.run_with(&["preview", "gc"], None, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("no preview has been idle"),
        "{}",
        text(&o.stdout)
    );
    let o = repo.run_with(&["preview", "gc", "--dry-run"], None, &clock);
    assert!(
        text(&o.stdout).contains("would destroy preview-8"),
        "{}",
        text(&o.stdout)
    );
    // With --format json, one document on every path (a dry run's too).
    let v = repo.json_with(&["preview", "gc", "--dry-run"], &clock, &fc);
    assert_eq!(v["dry_run"], true, "{v:#}");
    assert_eq!(v["expired"][0]["pr"], 8, "{v:#}");
    for k in ["destroyed", "kept", "failed"] {
        assert_eq!(v[k], serde_json::json!([]), "{k}: {v:#}");
    }
    let o = repo.run_with(&["preview", "gc"], None, &clock);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));

    // gc judges an idle preview again holding its deploy lock. One whose lock
    // a run holds (a push's deploy of it) is kept at once, and said.
    let own_lock = format!("/{template_bucket}/shop-preview-8-deploy-lock.json");
    let deploying = |expires: u64| forged_lock("ci-run-80", "deploy", expires);
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &own_lock,
        &deploying(epoch() + 3600)
    ));
    let o = repo.run_with(&["preview", "gc", "--yes"], None, &clock);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("preview-8 kept: locked by ci-run-80 (deploy)"),
        "{}",
        text(&o.stdout)
    );
    // A push that lands while gc waits for the lock: gc listed preview-8 idle,
    // the push's deploy marks it active and ends; gc then takes the lock, reads
    // the stamp again, and keeps it.
    let mut gc = repo.spawn(
        &["preview", "gc", "--yes", "--lock-wait", "2m"],
        false,
        &clock,
    );
    let mut stderr = std::io::BufReader::new(gc.stderr.take().expect("stderr"));
    let mut seen = String::new();
    while !seen.contains("destroying preview-8") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).expect("gc's stderr");
        assert!(n > 0, "gc ended before deciding: {seen}");
        seen.push_str(&line);
    }
    let pushed = serde_json::json!({ "pr": 8, "at": later.parse::<u64>().expect("later"), "by": "ci-run-80", "verb": "deploy" });
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &format!("/{template_bucket}/shop-preview-activity-8.json"),
        &pushed.to_string()
    ));
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &own_lock,
        &deploying(epoch() - 1)
    ));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("gc's stderr");
    let o = gc.wait_with_output().expect("gc");
    assert!(o.status.success(), "{seen}{rest}");
    assert!(
        text(&o.stdout).contains("preview-8 kept: active again"),
        "{}\n{seen}{rest}",
        text(&o.stdout)
    );
    assert!(
        pantstack_fakecloud_adapter::s3_get(fc.port, &own_lock).is_none(),
        "gc released the preview's lock"
    );
    let v = repo.json_with(&["preview", "list"], &clock, &fc);
    assert_eq!(v["previews"][0]["pr"], 8, "{v:#}");
    assert_eq!(v["previews"][0]["expired"], false, "{v:#}");

    // Idle for the TTL after that push: destroyed.
    let later = (epoch() + 24 * 86_400).to_string();
    let clock = [("PANTSTACK_NOW", later.as_str())];
    // One JSON document says what became of each expired preview.
    let v = repo.json_with(&["preview", "gc", "--yes"], &clock, &fc);
    assert_eq!(v["expired"][0]["pr"], 8, "{v:#}");
    assert_eq!(v["destroyed"][0]["environment"], "preview-8", "{v:#}");
    assert!(
        v["destroyed"][0]["parameters_deleted"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{v:#}"
    );
    assert_eq!(v["kept"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["failed"], serde_json::json!([]), "{v:#}");

    // Nothing is left of either preview.
    let v = repo.json(&["preview", "list"], &fc);
    assert_eq!(v["previews"], serde_json::json!([]), "{v:#}");
    let v = repo.json(
        &["secrets", "list", "--target", "aws", "--env", "preview-8"],
        &fc,
    );
    assert_eq!(v[0]["set"], false, "{v:#}");
    // The declared preview value stays for the next preview.
    let v = repo.json(
        &["secrets", "list", "--target", "aws", "--env", "preview"],
        &fc,
    );
    assert_eq!(v[0]["set"], true, "{v:#}");

    // A push's `up` of a preview that a teardown destroys while the push waits
    // for the preview's deploy lock: its claim counted the preview as existing
    // (so no cap, and only the named service), but holding the lock it finds
    // the preview gone and deploys nothing; only `up` of a new preview,
    // counted against the cap, creates it again.
    let stamp8 = format!("/{template_bucket}/shop-preview-activity-8.json");
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &own_lock,
        &deploying(epoch() + 3600)
    ));
    let pushed = serde_json::json!({ "pr": 8, "at": epoch(), "by": "ci-run-80", "verb": "deploy" });
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &stamp8,
        &pushed.to_string()
    ));
    let mut up = repo.spawn(
        &["preview", "up", "--pr", "8", "api", "--lock-wait", "2m"],
        false,
        &[],
    );
    let mut stderr = std::io::BufReader::new(up.stderr.take().expect("stderr"));
    let mut seen = String::new();
    while !seen.contains("deploying `preview-8`") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).expect("up's stderr");
        assert!(n > 0, "up ended before its deploy: {seen}");
        seen.push_str(&line);
    }
    // The teardown ends: the stamp goes, then the lock.
    assert!(pantstack_fakecloud_adapter::s3_delete(fc.port, &stamp8));
    assert!(pantstack_fakecloud_adapter::s3_put(
        fc.port,
        &own_lock,
        &deploying(epoch() - 1)
    ));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("up's stderr");
    let o = up.wait_with_output().expect("up");
    assert_eq!(o.status.code(), Some(1), "{seen}{rest}");
    assert!(
        rest.contains("preview-8 does not exist") && rest.contains("preview up --pr 8"),
        "{seen}{rest}"
    );
    let v = repo.json(&["preview", "list"], &fc);
    assert_eq!(v["previews"], serde_json::json!([]), "{v:#}");
    assert!(
        pantstack_fakecloud_adapter::s3_get(fc.port, &own_lock).is_none(),
        "up released the preview's lock"
    );
    // `deploy --env preview-N` of a preview that does not exist: refused (it
    // would skip the cap), and no slot is left claimed.
    let o = repo.run(&["deploy", "--target", "aws", "--env", "preview-8"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("preview-8 does not exist"),
        "{}",
        text(&o.stderr)
    );
    let v = repo.json(&["preview", "list"], &fc);
    assert_eq!(v["previews"], serde_json::json!([]), "{v:#}");

    // Two pull requests opened at once, one slot (max 1): exactly one passes the
    // cap; the other is refused by the cap or by the previews' lock, never both
    // created.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| repo.run(&["preview", "up", "--pr", "10"]));
        let b = s.spawn(|| repo.run(&["preview", "up", "--pr", "11"]));
        (a.join().expect("up 10"), b.join().expect("up 11"))
    });
    let (won, lost) = match (a.status.success(), b.status.success()) {
        (true, false) => (10, &b),
        (false, true) => (11, &a),
        _ => panic!(
            "exactly one of two previews fits one slot:\n10: {}\n11: {}",
            text(&a.stderr),
            text(&b.stderr)
        ),
    };
    let err = text(&lost.stderr);
    assert!(
        err.contains("previews.max is 1") || err.contains("previews of `shop` are locked by"),
        "{err}"
    );
    let v = repo.json(&["preview", "list"], &fc);
    let previews = v["previews"].as_array().expect("previews");
    assert_eq!(previews.len(), 1, "{v:#}");
    assert_eq!(previews[0]["pr"], won, "{v:#}");
    let o = repo.run(&["preview", "down", "--pr", &won.to_string(), "--yes"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    // The generated workflow's own scripts, run as its jobs would (the AWS
    // credentials step aside): a pull request opened → its preview; closed → gone.
    let dir = repo.base.join("workflows");
    let o = repo.run(&["workflows", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let wf = std::fs::read_to_string(dir.join("pantstack-preview.yml")).expect("preview workflow");
    let pr = [("PR", "9"), ("BASE", first.as_str())];
    let o = repo.script(&step_script(&wf, "Deploy the preview"), &pr);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(
        text(&o.stdout).contains("shop-preview-9-api"),
        "{}",
        text(&o.stdout)
    );
    let v = repo.json(&["preview", "list"], &fc);
    assert_eq!(v["previews"][0]["pr"], 9, "{v:#}");
    // Pushed again with nothing new: the preview runs this commit already, and
    // is marked active (here at a clock a day on).
    let day_on = (epoch() + 86_400).to_string();
    let pushed = [
        ("PR", "9"),
        ("BASE", first.as_str()),
        ("PANTSTACK_NOW", day_on.as_str()),
    ];
    let o = repo.script(&step_script(&wf, "Deploy the preview"), &pushed);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("runs this commit already")
            && text(&o.stdout).contains("preview-9 marked active"),
        "{}",
        text(&o.stdout)
    );
    let v = repo.json_with(
        &["preview", "list"],
        &[("PANTSTACK_NOW", day_on.as_str())],
        &fc,
    );
    assert_eq!(v["previews"][0]["idle_seconds"], 0, "{v:#}");
    let o = repo.script(&step_script(&wf, "Destroy the preview"), &pr);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let v = repo.json(&["preview", "list"], &fc);
    assert_eq!(v["previews"], serde_json::json!([]), "{v:#}");

    // Every call of `preview up/down/gc/touch/list`, `diff --pr` and the
    // workflow's scripts, as the previews' CI role.
    let synth = repo.base.join("synth-preview");
    let o = repo.run(&["synth", "--pr", "1", "--out", synth.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    check_ci_role(
        &fc,
        &foundation,
        "ci:preview",
        &synth.join("shop-preview-foundation.json"),
        &["shop-shared", "shop-preview-foundation"],
    );
}

fn git_out(root: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}");
    text(&o.stdout).trim().to_string()
}

/// The `run:` script of the step named `name…` in a generated workflow.
fn step_script(workflow: &str, name: &str) -> String {
    let mut lines = workflow
        .lines()
        .skip_while(|l| !l.contains(&format!("- name: {name}")));
    lines.next().unwrap_or_else(|| panic!("no step {name}"));
    for l in lines.by_ref() {
        if let Some(one) = l.trim_start().strip_prefix("run: ") {
            if one != "|" {
                return one.to_string();
            }
            break;
        }
    }
    let mut script = String::new();
    for l in lines {
        if !l.starts_with("          ") && !l.trim().is_empty() {
            break;
        }
        script.push_str(l.strip_prefix("          ").unwrap_or(l));
        script.push('\n');
    }
    script
}
