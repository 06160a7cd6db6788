//! One queue: visibility, receive counts, redrive, delays, retention, FIFO,
//! receive attempts, and its image.

use super::*;

#[test]
fn push_hex_writes_what_the_formatter_writes() {
    for v in [
        0u64,
        1,
        15,
        16,
        255,
        0xffff,
        0x1_0000,
        0x1a2_b3c4_d5e6,
        u64::MAX,
    ] {
        for width in [0usize, 1, 4, 8, 12, 16, 20] {
            let mut s = String::new();
            push_hex(&mut s, v, width);
            assert_eq!(s, format!("{v:0width$x}"), "{v} at {width}");
        }
    }
}

fn std_queue() -> Queue {
    Queue::new(Attributes {
        max_receive_count: Some(3),
        ..Attributes::default()
    })
}

#[test]
fn visibility_expiry_redelivers_with_a_new_receipt_and_count() {
    let mut q = std_queue();
    q.send("job", None, None, None, 0).unwrap();
    let (d, _) = q.receive(10, None, 1000).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].receive_count, 1);
    // Hidden for the 30 s default.
    assert!(q.receive(10, None, 30_999).unwrap().0.is_empty());
    let (again, _) = q.receive(10, None, 31_000).unwrap();
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt_handle, d[0].receipt_handle);
    // The old handle no longer deletes it.
    assert_eq!(
        q.delete(&d[0].receipt_handle),
        Err(Error::ReceiptHandleIsInvalid)
    );
    q.delete(&again[0].receipt_handle).unwrap();
    assert_eq!(q.counts(31_000), (0, 0, 0));
}

#[test]
fn redrive_at_max_receive_count() {
    let mut q = std_queue();
    q.send("poison", None, None, None, 0).unwrap();
    for i in 0..3 {
        let (d, moved) = q.receive(1, Some(0), i).unwrap();
        assert_eq!(d.len(), 1, "delivery {i}");
        assert!(moved.is_empty());
    }
    let (d, moved) = q.receive(1, Some(0), 10).unwrap();
    assert!(d.is_empty());
    assert_eq!(moved.len(), 1, "the fourth receive moves it to the DLQ");
    assert_eq!(moved[0].body, "poison");
    let mut dlq = Queue::new(Attributes::default());
    dlq.adopt(moved[0].clone(), 10);
    let (d, _) = dlq.receive(1, None, 10).unwrap();
    assert_eq!(
        (d[0].body.as_str(), d[0].message_id.as_str()),
        ("poison", moved[0].id.as_str())
    );
}

#[test]
fn delays_retention_and_limits() {
    let mut q = Queue::new(Attributes {
        delay_secs: 5,
        retention_secs: 60,
        ..Attributes::default()
    });
    q.send("late", None, None, None, 0).unwrap();
    q.send("now", Some(0), None, None, 0).unwrap();
    assert_eq!(q.counts(0), (1, 0, 1));
    assert_eq!(q.receive(10, None, 0).unwrap().0[0].body, "now");
    assert_eq!(q.receive(10, None, 5000).unwrap().0[0].body, "late");
    assert_eq!(q.counts(60_000), (0, 0, 0), "retention ends both");
    assert_eq!(
        q.send("x", Some(901), None, None, 0).unwrap_err().code(),
        "InvalidParameterValue"
    );
    assert_eq!(
        q.send(&"x".repeat(MAX_MESSAGE_BYTES + 1), None, None, None, 0)
            .unwrap_err()
            .code(),
        "InvalidParameterValue"
    );
    assert_eq!(
        q.receive(11, None, 0).unwrap_err().code(),
        "InvalidParameterValue"
    );
    let r = q.send("y", None, None, None, 70_000).unwrap();
    assert!(!r.duplicate);
    let (d, _) = q.receive(1, Some(10), 75_000).unwrap();
    q.change_visibility(&d[0].receipt_handle, 0, 75_001)
        .unwrap();
    assert_eq!(
        q.change_visibility(&d[0].receipt_handle, 5, 75_002),
        Err(Error::MessageNotInflight)
    );
}

#[test]
fn fifo_orders_groups_and_deduplicates_for_five_minutes() {
    let mut q = Queue::new(Attributes {
        fifo: true,
        content_based_deduplication: true,
        ..Attributes::default()
    });
    assert_eq!(
        q.send("a1", None, None, None, 0).unwrap_err().code(),
        "MissingParameter"
    );
    q.send("a1", None, Some("a"), None, 0).unwrap();
    q.send("a2", None, Some("a"), None, 0).unwrap();
    q.send("b1", None, Some("b"), None, 0).unwrap();
    let dup = q.send("a1", None, Some("a"), None, 1000).unwrap();
    assert!(dup.duplicate, "same body within 5 minutes");
    // One receive may take several of a group, in order; a group in flight
    // blocks the rest of it.
    let (d, _) = q.receive(1, None, 0).unwrap();
    assert_eq!(d[0].body, "a1");
    let (d2, _) = q.receive(10, None, 0).unwrap();
    let bodies: Vec<&str> = d2.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(bodies, ["b1"], "group a is blocked while a1 is in flight");
    q.delete(&d[0].receipt_handle).unwrap();
    let (d3, _) = q.receive(10, None, 0).unwrap();
    assert_eq!(d3[0].body, "a2");
    // After the window the same body is a new message.
    assert!(
        !q.send("a1", None, Some("a"), None, DEDUP_WINDOW_MS + 1)
            .unwrap()
            .duplicate
    );
    let mut plain = Queue::new(Attributes {
        fifo: true,
        ..Attributes::default()
    });
    assert_eq!(
        plain
            .send("x", None, Some("g"), None, 0)
            .unwrap_err()
            .code(),
        "InvalidParameterValue"
    );
    assert!(
        !plain
            .send("x", None, Some("g"), Some("id-1"), 0)
            .unwrap()
            .duplicate
    );
    assert!(
        plain
            .send("other body", None, Some("g"), Some("id-1"), 0)
            .unwrap()
            .duplicate
    );
}

fn fifo_with(bodies: &[(&str, &str)]) -> Queue {
    let mut q = Queue::new(Attributes {
        fifo: true,
        content_based_deduplication: true,
        ..Attributes::default()
    });
    for (group, body) in bodies {
        q.send(body, None, Some(group), None, 0).unwrap();
    }
    q
}

fn handles(d: &[Delivery]) -> Vec<(String, String, u32)> {
    d.iter()
        .map(|d| (d.body.clone(), d.receipt_handle.clone(), d.receive_count))
        .collect()
}

#[test]
fn a_retried_attempt_returns_the_same_messages_and_handles_and_resets_visibility() {
    let mut q = fifo_with(&[("a", "a1"), ("a", "a2"), ("b", "b1"), ("c", "c1")]);
    let (first, _) = q.receive_attempt(2, Some(30), Some("try-1"), 1000).unwrap();
    assert_eq!(first.len(), 2);
    // The retry, 20 s later: the same deliveries, receive counts unchanged.
    let (again, moved) = q
        .receive_attempt(2, Some(30), Some("try-1"), 21_000)
        .unwrap();
    assert!(moved.is_empty());
    assert_eq!(handles(&again), handles(&first));
    assert!(again.iter().all(|d| d.receive_count == 1));
    // It reset the visibility timeout: hidden until 51 s, not 31 s.
    assert_eq!(q.counts(40_000), (2, 2, 0));
    assert_eq!(q.counts(51_000), (4, 0, 0));
    // A handle of the attempt deletes its message.
    q.delete(&again[0].receipt_handle).unwrap();
    // Another attempt id gets the next messages (not those in flight).
    let mut q = fifo_with(&[("a", "a1"), ("b", "b1"), ("c", "c1")]);
    let (one, _) = q.receive_attempt(1, None, Some("one"), 0).unwrap();
    let (two, _) = q.receive_attempt(1, None, Some("two"), 0).unwrap();
    assert_eq!((one[0].body.as_str(), two[0].body.as_str()), ("a1", "b1"));
    let (one_again, _) = q.receive_attempt(1, None, Some("one"), 5).unwrap();
    assert_eq!(handles(&one_again), handles(&one));
}

#[test]
fn an_attempt_answers_for_five_minutes_only() {
    let mut q = fifo_with(&[("a", "a1"), ("b", "b1")]);
    let (first, _) = q.receive_attempt(1, Some(43_200), Some("t"), 0).unwrap();
    let (again, _) = q
        .receive_attempt(1, Some(43_200), Some("t"), ATTEMPT_WINDOW_MS - 1)
        .unwrap();
    assert_eq!(handles(&again), handles(&first));
    // Past the window the id is a new receive: the next visible message.
    let (later, _) = q
        .receive_attempt(1, Some(43_200), Some("t"), ATTEMPT_WINDOW_MS)
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].body, "b1");
    assert_ne!(later[0].receipt_handle, first[0].receipt_handle);
}

#[test]
fn a_deleted_or_changed_message_breaks_the_replay() {
    let mut q = fifo_with(&[("a", "a1"), ("b", "b1"), ("c", "c1")]);
    let (first, _) = q.receive_attempt(2, Some(60), Some("t"), 0).unwrap();
    assert_eq!(first.len(), 2);
    q.delete(&first[0].receipt_handle).unwrap();
    // Not the same messages any more: a receive of its own (b1 is in flight,
    // its group blocked; c1 is next).
    let (again, _) = q.receive_attempt(2, Some(60), Some("t"), 1000).unwrap();
    let bodies: Vec<&str> = again.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(bodies, ["c1"]);
    // That receive is what the id answers now.
    let (third, _) = q.receive_attempt(2, Some(60), Some("t"), 2000).unwrap();
    assert_eq!(handles(&third), handles(&again));

    let mut q = fifo_with(&[("a", "a1"), ("b", "b1")]);
    let (first, _) = q.receive_attempt(1, Some(60), Some("t"), 0).unwrap();
    q.change_visibility(&first[0].receipt_handle, 0, 10)
        .unwrap();
    let (again, _) = q.receive_attempt(1, Some(60), Some("t"), 20).unwrap();
    assert_eq!(again[0].body, "a1", "visible again, received anew");
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt_handle, first[0].receipt_handle);
}

#[test]
fn attempt_ids_are_checked_on_fifo_queues_and_ignored_on_standard_ones() {
    for ok in [
        "a",
        "A-z_0.9",
        &"x".repeat(128),
        r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##,
    ] {
        assert!(valid_attempt_id(ok), "{ok}");
    }
    for bad in ["", " ", "a b", "é", &"x".repeat(129), "tab\t"] {
        assert!(!valid_attempt_id(bad), "{bad}");
    }
    let mut q = fifo_with(&[("a", "a1")]);
    let e = q
        .receive_attempt(1, None, Some("no spaces"), 0)
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameterValue");
    assert_eq!(q.counts(0), (1, 0, 0), "nothing was received");
    let mut s = Queue::new(Attributes::default());
    s.send("m1", None, None, None, 0).unwrap();
    s.send("m2", None, None, None, 0).unwrap();
    let (one, _) = s.receive_attempt(1, None, Some("no spaces"), 0).unwrap();
    let (two, _) = s.receive_attempt(1, None, Some("no spaces"), 1).unwrap();
    assert_eq!((one[0].body.as_str(), two[0].body.as_str()), ("m1", "m2"));
}

#[test]
fn attempts_travel_in_the_image() {
    let mut q = fifo_with(&[("a", "a1"), ("b", "b1")]);
    let (first, _) = q.receive_attempt(1, None, Some("t"), 0).unwrap();
    let mut copy = q.head();
    copy.restore_messages(q.messages().cloned());
    let (again, _) = copy.receive_attempt(1, None, Some("t"), 10).unwrap();
    assert_eq!(handles(&again), handles(&first));
}

/// A queue's receipt table gives its room back once its messages are deleted
/// (a hash map keeps its capacity otherwise), and the dedup tables theirs once
/// their ids expire; what is left still works.
#[test]
fn tables_shrink_after_their_entries_are_gone() {
    let mut q = std_queue();
    for i in 0..5000 {
        q.send(&format!("m{i}"), None, None, None, 0).unwrap();
    }
    let mut handles = Vec::new();
    loop {
        let (d, _) = q.receive(10, Some(300), 1000).unwrap();
        if d.is_empty() {
            break;
        }
        handles.extend(d.into_iter().map(|d| d.receipt_handle));
    }
    assert_eq!(handles.len(), 5000);
    let full = q.receipts.capacity();
    assert!(full >= 5000, "{full}");
    let (keep, gone) = handles.split_at(10);
    for h in gone {
        q.delete(h).unwrap();
    }
    assert_eq!(q.receipts.len(), 10);
    assert!(
        q.receipts.capacity() <= 4 * MIN_SHRINK,
        "{} entries keep room for {} (was {full})",
        q.receipts.len(),
        q.receipts.capacity()
    );
    for h in keep {
        q.delete(h).unwrap();
    }
    assert_eq!(q.counts(1000), (0, 0, 0));

    let mut f = Queue::new(Attributes {
        fifo: true,
        ..Attributes::default()
    });
    for i in 0..2000 {
        f.send("b", None, Some("g"), Some(&format!("d{i}")), 0)
            .unwrap();
    }
    let full = (f.dedup.capacity(), f.dedup_order.capacity());
    assert!(full.0 >= 2000 && full.1 >= 2000, "{full:?}");
    // Five minutes on, the dedup ids have expired.
    f.send("b", None, Some("g"), Some("late"), DEDUP_WINDOW_MS)
        .unwrap();
    assert_eq!((f.dedup.len(), f.dedup_order.len()), (1, 1));
    assert!(
        f.dedup.capacity() <= MIN_SHRINK && f.dedup_order.capacity() <= MIN_SHRINK,
        "{:?} after {full:?}",
        (f.dedup.capacity(), f.dedup_order.capacity())
    );
    // A dedup id still deduplicates.
    let held = f.counts(DEDUP_WINDOW_MS + 1).0;
    f.send("b", None, Some("g"), Some("late"), DEDUP_WINDOW_MS + 1)
        .unwrap();
    assert_eq!(f.counts(DEDUP_WINDOW_MS + 1).0, held);
}
