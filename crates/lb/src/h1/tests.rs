use super::*;

use super::fuzzing::track as chunks;

#[test]
fn chunked_end_is_found_across_any_split() {
    let msg: &[u8] =
        b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
    let end = msg.len() - 4;
    for split in 0..msg.len() {
        let (a, b) = msg.split_at(split);
        assert_eq!(chunks(&[a, b]), Ok(Some(end)), "split at {split}");
    }
    let bytewise: Vec<&[u8]> = msg.chunks(1).collect();
    assert_eq!(chunks(&bytewise), Ok(Some(end)));
    assert_eq!(chunks(&[b"0\r\n\r\n"]), Ok(Some(5)));
    assert_eq!(chunks(&[b"3\r\nabc\r\n"]), Ok(None));
}

#[test]
fn chunk_tracking_does_not_depend_on_how_bytes_arrive() {
    // Pseudo-random byte soups, biased towards chunk syntax: fed whole or one
    // byte at a time, the tracker finds the same end (or the same error).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"0123456789abcdefABCDEF\r\n; \tzx";
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let msg: Vec<u8> = (0..len)
            .map(|i| {
                let r = x.rotate_left(i as u32 * 5) ^ (i as u64).wrapping_mul(0x2545_f491);
                alphabet[(r % alphabet.len() as u64) as usize]
            })
            .collect();
        let whole = chunks(&[&msg]);
        let bytewise: Vec<&[u8]> = msg.chunks(1).collect();
        assert_eq!(
            whole,
            chunks(&bytewise),
            "{:?}",
            String::from_utf8_lossy(&msg)
        );
        if let Ok(Some(n)) = whole {
            assert!(n <= msg.len());
        }
    }
}

#[test]
fn malformed_chunks_are_errors() {
    assert_eq!(chunks(&[b"zz\r\n"]), Err(()));
    assert_eq!(chunks(&[b"\r\n"]), Err(()));
    assert_eq!(chunks(&[b"3\r\nabcX"]), Err(()));
    assert_eq!(chunks(&[b"ffffffffffffffff\r\n"]), Err(()));
}

#[test]
fn request_heads_are_rewritten_or_handed_over() {
    let mut out = Vec::new();
    let buf = b"GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, x-secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: */*\r\n\r\n";
    let Parsed::Ok(h) = parse_request(buf, &mut out) else {
        panic!("not parsed")
    };
    assert_eq!(h.head_len, buf.len());
    assert!(!h.close);
    assert_eq!(at(buf, h.host.unwrap_or((0, 0))), b"example.com");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("GET /a?b=1 HTTP/1.1\r\n"), "{text}");
    assert!(text.contains("Host: example.com\r\n"), "{text}");
    assert!(text.contains("Accept: */*\r\n"), "{text}");
    for gone in ["Connection", "X-Secret", "Keep-Alive", "X-Forwarded-For"] {
        assert!(!text.contains(gone), "{gone} forwarded: {text}");
    }
    for handover in [
        &b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n",
        b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ] {
        assert!(
            matches!(parse_request(handover, &mut Vec::new()), Parsed::Handover),
            "{}",
            String::from_utf8_lossy(handover)
        );
    }
    assert!(matches!(
        parse_request(
            b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
            &mut Vec::new()
        ),
        Parsed::Bad(_)
    ));
    assert!(matches!(
        parse_request(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            &mut Vec::new()
        ),
        Parsed::Bad(_)
    ));
    assert!(matches!(
        parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n", &mut Vec::new()),
        Parsed::Partial
    ));
}

#[test]
fn response_framing_follows_rfc_9112() {
    let cases: &[(&[u8], bool, Framing, bool)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            false,
            Framing::Length(3),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            true,
            Framing::None,
            true,
        ),
        (
            b"HTTP/1.1 204 No Content\r\n\r\n",
            false,
            Framing::None,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            Framing::Chunked,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\n",
            false,
            Framing::UntilClose,
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
            Framing::Length(0),
            false,
        ),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            Framing::Length(0),
            false,
        ),
    ];
    for (head, head_request, framing, reusable) in cases {
        let mut out = Vec::new();
        let ParsedRes::Ok(r) = parse_response(head, *head_request, b"rid", false, &mut out) else {
            panic!("not parsed: {}", String::from_utf8_lossy(head))
        };
        assert_eq!(r.framing, *framing, "{}", String::from_utf8_lossy(head));
        assert_eq!(r.reusable, *reusable, "{}", String::from_utf8_lossy(head));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("x-request-id: rid\r\n"), "{text}");
        assert!(!text.contains("Connection: close"), "{text}");
    }
    let mut out = Vec::new();
    assert!(matches!(
        parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false,
            b"r",
            false,
            &mut out
        ),
        ParsedRes::Bad
    ));
}
