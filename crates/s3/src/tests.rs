//! The S3 state model: versioning, lifecycle and the journal image.

use super::*;

fn obj(id: &str, blob: &str) -> Version {
    Version {
        version_id: id.into(),
        delete_marker: false,
        blob: Some(blob.into()),
        inline: None,
        size: 1,
        etag: "e".into(),
        modified: 0,
        ..Version::default()
    }
}

/// Lifecycle actions fall due at creation (or becoming noncurrent) plus the
/// rule's days, rounded up to the next midnight (S3 user guide, "Lifecycle
/// rules: based on an object's age"); a versioned bucket's expiration makes a
/// delete marker, noncurrent expirations delete versions for good and keep
/// `NewerNoncurrentVersions`, and the filter selects by prefix, tags and size.
#[test]
fn lifecycle_rules_fall_due_as_s3_computes_them() {
    const DAY: u64 = 1000;
    let mut s = Objects::default();
    s.apply(&Op::CreateBucket {
        name: "b".into(),
        now: 0,
    });
    s.apply(&Op::Versioning {
        name: "b".into(),
        status: Versioning::Enabled,
    });
    let put = |s: &mut Objects, key: &str, id: &str, at: u64, tags: &[(&str, &str)]| {
        s.apply(&Op::Put {
            bucket: "b".into(),
            key: key.into(),
            version: Version {
                modified: at,
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..obj(id, id)
            },
        });
    };
    put(&mut s, "logs/a", "a1", 100, &[]);
    put(&mut s, "logs/a", "a2", 1500, &[]);
    put(&mut s, "logs/a", "a3", 2500, &[]);
    put(&mut s, "keep/b", "b1", 100, &[]);
    put(&mut s, "tmp/c", "c1", 100, &[("kind", "tmp")]);
    s.apply(&Op::Config {
        name: "b".into(),
        config: BucketConfig {
            lifecycle: Some(vec![
                LifecycleRule {
                    enabled: true,
                    prefix: "logs/".into(),
                    noncurrent_days: Some(1),
                    newer_noncurrent_versions: Some(1),
                    ..LifecycleRule::default()
                },
                LifecycleRule {
                    enabled: true,
                    tags: [("kind".to_string(), "tmp".to_string())].into(),
                    expiration_days: Some(2),
                    ..LifecycleRule::default()
                },
                LifecycleRule {
                    enabled: false,
                    expiration_days: Some(1),
                    ..LifecycleRule::default()
                },
            ]),
            ..BucketConfig::default()
        },
    });
    let mut n = 0;
    let mut ids = || {
        n += 1;
        format!("m{n}")
    };
    // a1 became noncurrent at 1500: due at 2500 rounded up to 3000; but one
    // newer noncurrent version (a2) is kept, and a1 is the second newest.
    assert!(s.lifecycle_ops(2999, DAY, &mut ids).is_empty());
    // At 3000 both are due: a1 (noncurrent since 1500, + 1 day, rounded up;
    // one newer noncurrent version, a2, is kept) and c1 (tag kind=tmp, created
    // at 100, + 2 days, rounded up), with a delete marker. The disabled rule
    // never acts on keep/b.
    let ops = s.lifecycle_ops(3000, DAY, &mut ids);
    let described: Vec<String> = ops
        .iter()
        .map(|o| match o {
            Op::Delete {
                key,
                version_id,
                marker_id,
                ..
            } => format!("{key} {version_id:?} {marker_id}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        described,
        vec![
            "logs/a Some(\"a1\") ".to_string(),
            "tmp/c None m1".to_string()
        ]
    );
    for op in &ops {
        s.apply(op);
    }
    let b = &s.buckets["b"];
    assert_eq!(
        b.objects["tmp/c"].len(),
        2,
        "c1 stays, noncurrent, under its marker"
    );
    assert!(b.objects["tmp/c"][1].delete_marker);
    assert_eq!(b.objects["keep/b"].len(), 1);
    // A marker left alone is removed by ExpiredObjectDeleteMarker.
    s.apply(&Op::Delete {
        bucket: "b".into(),
        key: "tmp/c".into(),
        version_id: Some("c1".into()),
        marker_id: String::new(),
        now: 0,
    });
    if let Some(b) = s.buckets.get_mut("b") {
        b.config.lifecycle = Some(vec![LifecycleRule {
            enabled: true,
            expired_object_delete_marker: true,
            ..LifecycleRule::default()
        }]);
    }
    let ops = s.lifecycle_ops(1_000_000, DAY, &mut ids);
    for op in &ops {
        s.apply(op);
    }
    assert!(!s.buckets["b"].objects.contains_key("tmp/c"), "{ops:?}");
}

#[test]
fn versioning_semantics() {
    let mut s = Objects::default();
    s.apply(&Op::CreateBucket {
        name: "b".into(),
        now: 0,
    });
    s.apply(&Op::Put {
        bucket: "b".into(),
        key: "k".into(),
        version: obj("null", "x1"),
    });
    let g = s.apply(&Op::Put {
        bucket: "b".into(),
        key: "k".into(),
        version: obj("null", "x2"),
    });
    assert_eq!(
        g,
        vec!["x1".to_string()],
        "unversioned overwrite frees the old blob"
    );
    s.apply(&Op::Versioning {
        name: "b".into(),
        status: Versioning::Enabled,
    });
    s.apply(&Op::Put {
        bucket: "b".into(),
        key: "k".into(),
        version: obj("v2", "x3"),
    });
    let g = s.apply(&Op::Delete {
        bucket: "b".into(),
        key: "k".into(),
        version_id: None,
        marker_id: "m1".into(),
        now: 1,
    });
    assert!(g.is_empty(), "a delete marker frees nothing");
    let b = &s.buckets["b"];
    assert!(b.latest("k").unwrap().delete_marker);
    assert_eq!(b.objects["k"].len(), 3);
    let g = s.apply(&Op::Delete {
        bucket: "b".into(),
        key: "k".into(),
        version_id: Some("v2".into()),
        marker_id: String::new(),
        now: 2,
    });
    assert_eq!(g, vec!["x3".to_string()]);
    assert_eq!(s.referenced().into_iter().collect::<Vec<_>>(), ["x2"]);
}

/// A completed upload's answer is remembered (bounded), replays from the
/// journal and survives a compacted image.
#[test]
fn completed_uploads_are_remembered_and_imaged() {
    let mut s = Objects::default();
    s.apply(&Op::CreateBucket {
        name: "b".into(),
        now: 0,
    });
    let upload = Upload {
        key: "k".into(),
        initiated: 0,
        template: obj("", ""),
        checksum_algorithm: None,
        parts: BTreeMap::new(),
    };
    for n in 0..COMPLETED_KEEP + 2 {
        s.apply(&Op::CreateUpload {
            bucket: "b".into(),
            upload_id: format!("u{n}"),
            upload: upload.clone(),
        });
        let mut v = obj("null", &format!("x{n}"));
        v.etag = format!("e{n}-1");
        s.apply(&Op::CompleteUpload {
            bucket: "b".into(),
            upload_id: format!("u{n}"),
            version: v,
        });
    }
    let b = &s.buckets["b"];
    assert_eq!(b.completed.len(), COMPLETED_KEEP);
    assert!(b.completed("u0").is_none() && b.completed("u1").is_none());
    let last = format!("u{}", COMPLETED_KEEP + 1);
    assert_eq!(
        b.completed(&last).unwrap().etag,
        format!("e{}-1", COMPLETED_KEEP + 1)
    );
    assert_eq!(b.completed(&last).unwrap().version_id, None);
    let mut ops = Vec::new();
    s.image(&mut |op| ops.push(serde_json::to_string(&op).unwrap()));
    let mut t = Objects::default();
    for op in &ops {
        t.apply(&serde_json::from_str(op).unwrap());
    }
    assert_eq!(t.buckets["b"].completed, b.completed);
    // An image record of an older journal (no `completed`) still reads.
    let old: Op =
        serde_json::from_str(r#"{"op":"image_bucket","name":"c","created":1,"versioning":null}"#)
            .unwrap();
    t.apply(&old);
    assert!(t.buckets["c"].completed.is_empty());
}

#[test]
fn versioning_is_journaled_as_s3_reports_it() {
    let op = |status| Op::Versioning {
        name: "b".into(),
        status,
    };
    for (status, text) in [
        (
            Versioning::Enabled,
            r#"{"op":"versioning","name":"b","status":"Enabled"}"#,
        ),
        (
            Versioning::Suspended,
            r#"{"op":"versioning","name":"b","status":"Suspended"}"#,
        ),
    ] {
        assert_eq!(serde_json::to_string(&op(status)).unwrap(), text);
        let back: Op = serde_json::from_str(text).unwrap();
        assert!(matches!(back, Op::Versioning { status: s, .. } if s == status));
    }
    let image = Op::ImageBucket {
        name: "c".into(),
        created: 1,
        versioning: Versioning::Unversioned,
        completed: Vec::new(),
        config: BucketConfig::default(),
    };
    assert_eq!(
        serde_json::to_string(&image).unwrap(),
        r#"{"op":"image_bucket","name":"c","created":1,"versioning":null}"#
    );
    assert!(
        serde_json::from_str::<Op>(r#"{"op":"versioning","name":"b","status":"Off"}"#).is_err()
    );
}

/// Inline data is bytes in memory and the same base64 text in the journal as
/// when it was kept as a base64 string: a journal written before reads the
/// same, and damaged base64 is refused by name.
#[test]
fn inline_data_is_journaled_as_base64_text() {
    let v = Version {
        version_id: "null".into(),
        inline: Some(Inline(bytes::Bytes::from_static(b"hello\x00\xff"))),
        size: 7,
        ..Version::default()
    };
    let text = serde_json::to_value(&v).unwrap();
    assert_eq!(text["inline"], "aGVsbG8A/w==");
    let back: Version = serde_json::from_value(text).unwrap();
    assert_eq!(back, v);
    // As an older journal holds it.
    let old: Version = serde_json::from_str(
        r#"{"version_id":"null","delete_marker":false,"blob":null,"inline":"aGk=","size":2,
            "etag":"e","modified":0,"content_type":null,"metadata":{},"headers":{},
            "checksums":{},"parts":null}"#,
    )
    .unwrap();
    assert_eq!(old.inline.unwrap().0.as_ref(), b"hi");
    let bad = serde_json::from_str::<Version>(
        r#"{"version_id":"null","delete_marker":false,"blob":null,"inline":"***","size":2,
            "etag":"e","modified":0,"content_type":null,"metadata":{},"headers":{},
            "checksums":{},"parts":null}"#,
    )
    .unwrap_err();
    assert!(bad.to_string().contains("damaged inline object"), "{bad}");
}
