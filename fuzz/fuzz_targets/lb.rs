//! The load balancer's HTTP/1.1 fast path on arbitrary bytes: request and response
//! heads and chunked bodies. Never panics; what it forwards is itself a well-formed
//! head of the same length class, with the request's one Content-Length unchanged;
//! chunk tracking gives the same answer however the bytes are split.
//! Input: one selector byte, then the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pantstack_lb::fuzzing::{ChunkedEnd, Request, chunked_end, request, response};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => {
            if let Request::Forward(len, head) = request(rest) {
                assert!(len <= rest.len());
                // The head the target gets parses completely, to its whole length.
                let mut headers = [httparse::EMPTY_HEADER; 256];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&head) {
                    Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.len()),
                    other => panic!("forwarded head does not parse: {other:?}"),
                }
                // Framing is never lost on the way: a taken request had at most one
                // Content-Length, and the target gets it unchanged.
                let mut in_headers = [httparse::EMPTY_HEADER; 256];
                let mut input = httparse::Request::new(&mut in_headers);
                if let Ok(httparse::Status::Complete(_)) = input.parse(rest) {
                    let lengths = |hs: &[httparse::Header<'_>]| -> Vec<Vec<u8>> {
                        hs.iter()
                            .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
                            .map(|h| h.value.to_vec())
                            .collect()
                    };
                    let (sent, got) = (lengths(input.headers), lengths(req.headers));
                    assert!(sent.len() <= 1, "several Content-Length taken");
                    assert_eq!(sent, got, "Content-Length changed on the way");
                }
                for h in req.headers.iter() {
                    for hop in [
                        "connection",
                        "keep-alive",
                        "transfer-encoding",
                        "upgrade",
                        "te",
                    ] {
                        assert!(!h.name.eq_ignore_ascii_case(hop), "{hop} forwarded");
                    }
                }
            }
        }
        1 => {
            if let Some((len, head, _)) = response(rest, sel & 0x80 != 0) {
                assert!(len <= rest.len());
                let mut headers = [httparse::EMPTY_HEADER; 256];
                let mut res = httparse::Response::new(&mut headers);
                match res.parse(&head) {
                    Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.len()),
                    other => panic!("head for the client does not parse: {other:?}"),
                }
            }
        }
        _ => {
            let whole = chunked_end(&[rest]);
            if let ChunkedEnd::At(n) = whole {
                assert!(n <= rest.len());
            }
            let split = (sel as usize) % (rest.len() + 1);
            let (a, b) = rest.split_at(split);
            assert_eq!(whole, chunked_end(&[a, b]));
        }
    }
});
