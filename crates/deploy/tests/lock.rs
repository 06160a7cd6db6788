//! The deploy lock's renewal against a real S3: pantstack's own local endpoint
//! (real HTTP on 127.0.0.1, SigV4, conditional writes, a versioned bucket, as
//! the template bucket is), reached by the deploy crate's own SDK clients. The
//! lock lasts 3 s here, so its holder renews it every second.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use pantstack_deploy::Clients;
use pantstack_deploy::lock::{self, Holder};
use pantstack_endpoint::{Config, Core, http};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const BUCKET: &str = "shop-templates";
const KEY: &str = "shop-test-deploy-lock.json";

/// A local endpoint of its own (state in a temp directory, removed on drop) and
/// the deploy crate's clients pointed at it, with the versioned template bucket.
struct S3 {
    _server: http::Server,
    clients: Clients,
    dir: PathBuf,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn s3(name: &str) -> S3 {
    let dir = std::env::temp_dir().join(format!("pantstack-lock-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let core = Arc::new(
        Core::open(&Config {
            dir: dir.join("aws"),
            key_file: dir.join("keys/test.key"),
            region: "us-east-1".into(),
            principals: vec!["ci".into()],
            policies: Default::default(),
            compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
        })
        .expect("open"),
    );
    let server = http::serve(core.clone(), 0).await.expect("serve");
    let creds = core.credentials("ci");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(server.url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            creds.access_key,
            creds.secret_key,
            None,
            None,
            "pantstack-test",
        ))
        .load()
        .await;
    let mut clients = Clients::from_config(config, "us-east-1");
    clients.lock_ttl = Duration::from_secs(3);
    clients.poll = Duration::from_millis(100);
    clients
        .s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    clients
        .s3
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    S3 {
        _server: server,
        clients,
        dir,
    }
}

async fn take(c: &Clients, verb: &str) -> lock::Held {
    lock::acquire(c, BUCKET, KEY, verb, Duration::ZERO, "test")
        .await
        .expect("the lock is free")
}

async fn stored(c: &Clients) -> Option<(Holder, String)> {
    lock::holder(c, BUCKET, KEY).await.expect("read the lock")
}

/// Versions and delete markers of the lock object left in the bucket.
async fn versions(c: &Clients) -> usize {
    let v =
        c.s3.list_object_versions()
            .bucket(BUCKET)
            .prefix(KEY)
            .send()
            .await
            .expect("list versions");
    v.versions().len() + v.delete_markers().len()
}

/// Another run takes the lock over (as `lock::try_acquire` does once it has
/// expired: a conditional write on the ETag it read).
async fn taken_over_by(c: &Clients, owner: &str) {
    let (_, etag) = stored(c).await.expect("held");
    let other = Holder {
        owner: owner.into(),
        verb: "deploy".into(),
        since: 1,
        expires: u64::MAX / 2,
    };
    c.s3.put_object()
        .bucket(BUCKET)
        .key(KEY)
        .if_match(etag)
        .body(ByteStream::from(serde_json::to_vec(&other).unwrap()))
        .send()
        .await
        .expect("the takeover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_is_renewed_while_its_run_goes_on_and_released_after() {
    let s = s3("renewed").await;
    let c = &s.clients;
    assert_eq!(lock::renew_every(c), Duration::from_secs(1));
    let held = take(c, "deploy").await;
    let (first, _) = stored(c).await.expect("taken");
    assert_eq!(first.expires, first.since + 3);

    // The run outlives the lock's first expiry; meanwhile the stored lock's
    // expiry moves forward, held by the same run.
    let (seen, kept) = lock::hold_while(c, held, async {
        tokio::time::sleep(Duration::from_millis(3500)).await;
        stored(c).await
    })
    .await;
    let (during, _) = seen.expect("still held while the run goes on");
    assert_eq!(during.owner, first.owner);
    assert_eq!(during.since, first.since);
    assert!(
        during.expires >= first.expires + 2,
        "renewed: expiry {} then {}",
        first.expires,
        during.expires
    );
    assert!(!kept.lost, "{kept:?}");
    assert!(
        kept.renew_error.is_none() && kept.release_error.is_none(),
        "{kept:?}"
    );

    // Released: gone with every version, and it stays gone.
    assert!(stored(c).await.is_none());
    assert_eq!(versions(c).await, 0);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(stored(c).await.is_none(), "no renewal after the release");
    assert_eq!(versions(c).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lock_was_taken_over_is_told_and_leaves_it_alone() {
    let s = s3("lost").await;
    let c = &s.clients;
    let held = take(c, "deploy").await;
    let ((), kept) = lock::hold_while(c, held, async {
        taken_over_by(c, "ci-run-99").await;
        // Past the next renewal, which finds the lock another's.
        tokio::time::sleep(Duration::from_millis(2500)).await;
    })
    .await;
    assert!(kept.lost, "the run is told it lost its lock: {kept:?}");
    assert!(kept.release_error.is_none(), "{kept:?}");
    let (now, _) = stored(c).await.expect("the new holder's lock stays");
    assert_eq!(now.owner, "ci-run-99", "neither renewed over nor released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_never_brings_a_released_or_removed_lock_back() {
    let s = s3("released").await;
    let c = &s.clients;

    // A renewal of a lock already released writes nothing.
    let held = take(c, "deploy").await;
    let mut stale = held.clone();
    lock::release(c, &held).await.expect("release");
    assert!(!lock::renew(c, &mut stale).await.expect("renew"), "lost");
    assert!(stored(c).await.is_none());
    assert_eq!(versions(c).await, 0);

    // Removed by `pantstack unlock` while its run goes on: the run's next
    // renewal finds it gone, says the lock is lost, and does not write it
    // back; nothing is left after the run either.
    let held = take(c, "deploy").await;
    let ((), kept) = lock::hold_while(c, held, async {
        let (_, etag) = stored(c).await.expect("held");
        let removed = lock::remove(c, BUCKET, KEY, &etag).await.expect("unlock");
        assert!(matches!(removed, lock::Removed::Removed(_)), "{removed:?}");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(stored(c).await.is_none(), "not renewed back meanwhile");
    })
    .await;
    assert!(kept.lost, "{kept:?}");
    assert!(stored(c).await.is_none());
    assert_eq!(versions(c).await, 0);
}

/// The previews' lock, renewed on the runtime's threads while `preview up`
/// counts synchronously: renewed, then stopped and released for good; a
/// takeover meanwhile is reported as lost (nothing to release).
#[test]
fn the_previews_lock_is_renewed_while_held_and_stays_released() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt.block_on(s3("renewing"));
    let c = &s.clients;
    let held = rt.block_on(take(c, "preview up"));
    let (first, _) = rt.block_on(stored(c)).expect("taken");
    let renewing = lock::Renewing::start(rt.handle(), c, held);
    std::thread::sleep(Duration::from_millis(3500));
    let (during, _) = rt.block_on(stored(c)).expect("held past its first expiry");
    assert!(during.expires >= first.expires + 2, "{first:?} {during:?}");
    let held = rt.block_on(renewing.stop()).expect("not lost");
    rt.block_on(lock::release(c, &held)).expect("release");
    assert!(
        rt.block_on(stored(c)).is_none(),
        "released with the ETag last renewed"
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(rt.block_on(stored(c)).is_none(), "no renewal after stop");

    let held = rt.block_on(take(c, "preview up"));
    let renewing = lock::Renewing::start(rt.handle(), c, held);
    rt.block_on(taken_over_by(c, "ci-run-7"));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(rt.block_on(renewing.stop()).is_none(), "lost to ci-run-7");
    assert_eq!(rt.block_on(stored(c)).expect("kept").0.owner, "ci-run-7");
}

/// A lock lost mid-run (taken over after a renewal failed to come in time)
/// marks the clients' watch at once: the run's next stack operation is refused
/// without reaching CloudFormation, and the run is told who took the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lock_starts_no_further_stack_operation() {
    let s = s3("stops").await;
    let c = &s.clients;
    let held = take(c, "deploy").await;
    let (refused, kept) = lock::hold_while(c, held, async {
        assert!(c.lock_watch.lost().is_none(), "held at first");
        taken_over_by(c, "ci-run-99").await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let why = c.lock_watch.lost().expect("the run knows its lock is lost");
        assert!(why.contains("ci-run-99 (deploy)"), "{why}");
        // A clone for another region shares the watch (stacks of a run run on
        // clones of its clients).
        let other = c.in_region("eu-west-1");
        assert!(other.lock_watch.lost().is_some());
        let p = pantstack_deploy::progress::Progress::new();
        // No image is built or pushed either (the example's api: a build that
        // would otherwise start docker).
        let loaded = pantstack_model::repo::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples"),
        );
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let repo = loaded.repo;
        let aws = pantstack_local::spec::Aws {
            endpoint: "http://127.0.0.1:9".into(),
        };
        let units = pantstack_local::spec::units(&repo, "test", None, &aws);
        let source = pantstack_deploy::images::Source {
            branch: "dev".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            dirty: true,
        };
        let images = pantstack_deploy::images::plan(&units, &source).expect("plan");
        let api = images
            .iter()
            .find(|i| i.service == "api")
            .expect("api's image");
        let dir =
            std::env::temp_dir().join(format!("pantstack-lock-{}-images", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let not_built = pantstack_deploy::images::ship(
            &other,
            api,
            &source,
            "000000000000.dkr.ecr.us-east-1.amazonaws.com/shop",
            "000000000000.dkr.ecr.us-east-1.amazonaws.com",
            &dir,
            &p,
        )
        .await
        .expect_err("no image after the lock is lost");
        assert!(
            not_built.contains("not built") && not_built.contains("ci-run-99"),
            "{not_built}"
        );
        assert!(!dir.join("build-api.log").exists(), "no build started");
        let _ = std::fs::remove_dir_all(&dir);
        pantstack_deploy::stack::delete_and_wait(&other, "shop-test-api", &p)
            .await
            .expect_err("no stack operation after the lock is lost")
    })
    .await;
    assert!(
        refused.reason.contains("not deleted") && refused.reason.contains("ci-run-99"),
        "{refused:?}"
    );
    assert!(kept.lost, "{kept:?}");
    assert_eq!(
        kept.lost_to.as_ref().map(|h| h.owner.as_str()),
        Some("ci-run-99")
    );
    let m = kept.lost_message().expect("a lost lock is said");
    assert!(
        m.contains("ci-run-99 (deploy)") && m.contains("took it over"),
        "{m}"
    );
    assert!(c.lock_watch.lost().is_none(), "the next run starts afresh");
    assert_eq!(stored(c).await.expect("kept").0.owner, "ci-run-99");

    // A run that kept its lock is never refused.
    let held = take_after_expiry(c).await;
    let ((), kept) = lock::hold_while(c, held, async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(c.lock_watch.lost().is_none());
    })
    .await;
    assert!(kept.lost_message().is_none(), "{kept:?}");
}

/// Takes the lock from the far-future holder `taken_over_by` wrote, by
/// removing it first (as `pantstack unlock` does).
async fn take_after_expiry(c: &Clients) -> lock::Held {
    let (_, etag) = stored(c).await.expect("held");
    let removed = lock::remove(c, BUCKET, KEY, &etag).await.expect("unlock");
    assert!(matches!(removed, lock::Removed::Removed(_)), "{removed:?}");
    take(c, "deploy").await
}

/// A template bucket that is gone is an error naming it at once (not a lock
/// "just released" after the whole --lock-wait, not an unlocked environment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_an_error_naming_it_at_once() {
    let s = s3("nobucket").await;
    let c = &s.clients;
    let started = std::time::Instant::now();
    let err = lock::acquire(
        c,
        "gone-templates",
        KEY,
        "deploy",
        Duration::from_secs(20),
        "test",
    )
    .await
    .expect_err("no bucket, no lock");
    assert!(started.elapsed() < Duration::from_secs(5), "not waited for");
    assert!(
        err.contains("gone-templates")
            && err.contains("does not exist")
            && err.contains("pantstack bootstrap"),
        "{err}"
    );
    let err = lock::holder(c, "gone-templates", KEY)
        .await
        .expect_err("read");
    assert!(
        err.contains("gone-templates") && err.contains("does not exist"),
        "{err}"
    );
    let err = lock::remove(c, "gone-templates", KEY, "\"x\"")
        .await
        .expect_err("unlock");
    assert!(err.contains("does not exist"), "{err}");
    // A missing key in the bucket that is there is a free lock, as before.
    assert!(stored(c).await.is_none());
}

/// Removal deletes only the version shown and older ones: a lock written by
/// another run after the read survives; two locks of the same owner, verb and
/// second differ by their nonce, so by their ETag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_never_deletes_a_newer_lock() {
    let s = s3("newer").await;
    let c = &s.clients;

    // Same process, verb and (most likely) second: still another ETag.
    let a = take(c, "deploy").await;
    let first = lock::read(c, BUCKET, KEY).await.unwrap().expect("held");
    lock::release(c, &a).await.expect("release");
    let b = take(c, "deploy").await;
    let second = lock::read(c, BUCKET, KEY).await.unwrap().expect("held");
    assert_ne!(first.etag, second.etag, "a nonce in every lock body");
    let r = lock::remove(c, BUCKET, KEY, &first.etag).await.unwrap();
    assert!(matches!(r, lock::Removed::ChangedHands(_)), "{r:?}");
    assert!(stored(c).await.is_some(), "b's lock stays");

    // unlock read b's lock; b released it and c took it before the delete:
    // deleting what unlock read leaves c's lock.
    let shown = lock::read(c, BUCKET, KEY).await.unwrap().expect("held");
    lock::release(c, &b).await.expect("release");
    let _c = take(c, "deploy").await;
    lock::delete_through(c, BUCKET, KEY, shown.version.as_deref())
        .await
        .expect("delete");
    let now = lock::read(c, BUCKET, KEY)
        .await
        .unwrap()
        .expect("c's lock stays");
    assert_ne!(now.etag, shown.etag);

    // A lock taken over (a newer version over the shown one): deleting the
    // shown version and older ones leaves the newer one current, alone.
    taken_over_by(c, "ci-run-3").await;
    let before = versions(c).await;
    assert!(before >= 2, "{before}");
    lock::delete_through(c, BUCKET, KEY, now.version.as_deref())
        .await
        .expect("delete");
    assert_eq!(stored(c).await.expect("kept").0.owner, "ci-run-3");
    assert_eq!(
        versions(c).await,
        1,
        "the older versions went, the newer stayed"
    );
}

/// Expiry is judged by S3's clock (the object's Last-Modified plus the TTL its
/// writer wrote, against the response's Date): a lock whose writer's clock
/// (or the reader's) is off is not taken over early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_judged_by_the_servers_clock() {
    let s = s3("skew").await;
    let c = &s.clients;
    let put = |body: serde_json::Value| async move {
        c.s3.put_object()
            .bucket(BUCKET)
            .key(KEY)
            .body(ByteStream::from(body.to_string().into_bytes()))
            .send()
            .await
            .expect("put");
    };
    // Written just now with a TTL of an hour, its `expires` long past by the
    // writer's clock: held.
    put(serde_json::json!({ "owner": "skewed-1", "verb": "deploy", "since": 1, "expires": 2, "ttl_s": 3600 })).await;
    let f = lock::read(c, BUCKET, KEY).await.unwrap().expect("there");
    assert!(!f.stale, "{f:?}");
    let refused = lock::try_acquire(c, BUCKET, KEY, "deploy", Duration::ZERO)
        .await
        .unwrap();
    assert!(
        refused.is_err_and(|who| who.contains("skewed-1")),
        "not taken over"
    );

    // An older lock without its TTL: the reader's (3 s here) from its
    // Last-Modified, not its `expires`.
    put(serde_json::json!({ "owner": "skewed-2", "verb": "deploy", "since": 1, "expires": 2 }))
        .await;
    assert!(
        !lock::read(c, BUCKET, KEY)
            .await
            .unwrap()
            .expect("there")
            .stale
    );
    tokio::time::sleep(Duration::from_millis(4200)).await;
    assert!(
        lock::read(c, BUCKET, KEY)
            .await
            .unwrap()
            .expect("there")
            .stale
    );

    // And one whose `expires` lies far ahead (its writer's clock was ahead)
    // expires by the server's clock all the same.
    put(serde_json::json!({ "owner": "skewed-3", "verb": "deploy", "since": 1, "expires": u64::MAX / 2, "ttl_s": 1 })).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let held = lock::try_acquire(c, BUCKET, KEY, "deploy", Duration::ZERO)
        .await
        .unwrap()
        .expect("stale by the server's clock: taken over");
    assert_eq!(held.took_over.map(|h| h.owner).as_deref(), Some("skewed-3"));
}
