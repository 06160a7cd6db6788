//! S3 requests as SDKs other than Rust's frame them, on a raw socket.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod raw;

use pantstack_awsproto::sigv4;
use std::io::Write;

/// boto3 with trailer checksums sends one field, `Content-Encoding:
/// gzip,aws-chunked`, over an unsigned aws-chunked body: S3 stores `gzip`
/// (PutObject docs; SigV4 streaming docs: the object is stored without the
/// aws-chunked encoding), and `aws-chunked` alone stores no Content-Encoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_style_aws_chunked_content_encoding_is_stripped() {
    let l = raw::local("s3wire-encoding").await;
    let r = l.send(&l.signed("s3", "PUT", "/bkt", &[], b""));
    assert_eq!(r.status, 200, "{}", r.body);
    for (key, encoding, stored) in [
        ("zipped", "gzip,aws-chunked", Some("gzip")),
        ("plain", "aws-chunked", None),
    ] {
        let data = b"data sent in aws-chunked framing";
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc);
        crc.update(data);
        let sum = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            (crc.finalize() as u32).to_be_bytes(),
        );
        let mut body = format!("{:x}\r\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n0\r\nx-amz-checksum-crc32:{sum}\r\n\r\n").as_bytes());
        let date = raw::amz_date();
        let payload = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
        let path = format!("/bkt/{key}");
        let headers: Vec<(String, String)> = [
            ("host", format!("127.0.0.1:{}", l.port())),
            ("x-amz-date", date.clone()),
            ("x-amz-content-sha256", payload.into()),
            ("content-encoding", encoding.into()),
            ("x-amz-trailer", "x-amz-checksum-crc32".into()),
            ("x-amz-decoded-content-length", data.len().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let auth = sigv4::authorization(
            &sigv4::Request::from_target("PUT", &path, &headers),
            &l.access,
            &l.secret,
            raw::REGION,
            "s3",
            &date,
            payload,
        );
        let mut req = format!("PUT {path} HTTP/1.1\r\n");
        for (k, v) in &headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!(
            "authorization: {auth}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ));
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(&body);
        let mut s = l.connect();
        s.write_all(&bytes).unwrap();
        let r = raw::read_response(&mut s, &mut Vec::new());
        assert_eq!(r.status, 200, "{encoding}: {}", r.body);
        let r = l.send(&l.signed("s3", "GET", &path, &[], b""));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), stored, "{encoding}");
        assert_eq!(r.body.as_bytes(), data);
    }
}
