//! A minimal HTTP/1.1 backend for load-balancer benchmarks: answers `ok\n` to
//! everything, keep-alive, one current-thread runtime per core on a SO_REUSEPORT
//! port. Usage: bench-backend PORT

#![forbid(unsafe_code)]

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;

fn main() {
    let Some(port) = std::env::args().nth(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: bench-backend PORT");
        std::process::exit(2);
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let bind = || -> std::io::Result<tokio::net::TcpListener> {
                        let s = tokio::net::TcpSocket::new_v4()?;
                        s.set_reuseaddr(true)?;
                        s.set_reuseport(true)?;
                        s.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
                        s.listen(4096)
                    };
                    let listener = match bind() {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
                            std::process::exit(1);
                        }
                    };
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                    b"ok\n",
                                ))))
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .keep_alive(true)
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                });
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
