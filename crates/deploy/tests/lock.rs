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
