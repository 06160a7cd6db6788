//! A measurement probe, not product code (see README.md): a bare HTTP/1.1 proxy on
//! io_uring, thread per core, that submits every operation a loop turn produced in
//! one `io_uring_enter`. It answers one question: how much of the balancer's kernel
//! cost is the one-system-call-per-send shape of epoll I/O? It cuts every corner the
//! real balancer cannot (no header parsing beyond the blank line, no response
//! rewrite, no timeouts or health checks, one upstream connection per client
//! connection, a response assumed to arrive in one read), and panics on anything
//! unexpected.
use io_uring::{opcode, types, IoUring};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

const ACCEPT: u64 = 0;
const CRECV: u64 = 1;
const USEND: u64 = 2;
const URECV: u64 = 3;
const CSEND: u64 = 4;

struct Conn {
    client: RawFd,
    up: RawFd,
    buf: Vec<u8>,
    rbuf: Vec<u8>,
    out: Vec<u8>,
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// The receive of a client's next bytes into its buffer's spare capacity.
fn client_recv(c: &mut Conn, slot: usize) -> io_uring::squeue::Entry {
    let b = c.buf.spare_capacity_mut();
    opcode::Recv::new(
        types::Fd(c.client),
        b.as_mut_ptr() as *mut u8,
        b.len() as u32,
    )
    .build()
    .user_data((slot as u64) << 3 | CRECV)
}

fn worker(port: u16, targets: Vec<SocketAddr>, idx: usize) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_reuse_address(true).unwrap();
    sock.set_reuse_port(true).unwrap();
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    sock.listen(4096).unwrap();
    let listener: TcpListener = sock.into();
    let lfd = listener.as_raw_fd();
    let mut ring = IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .build(4096)
        .unwrap();
    let mut conns: Vec<Option<Box<Conn>>> = Vec::new();
    let mut turn = idx;
    // PROBE_SUBMIT_EACH=1: one io_uring_enter per operation, as epoll I/O makes one
    // system call per operation (tells batching apart from io_uring as such).
    let each = std::env::var("PROBE_SUBMIT_EACH").is_ok_and(|v| v == "1");
    let push = |ring: &mut IoUring, e: io_uring::squeue::Entry| unsafe {
        while ring.submission().push(&e).is_err() {
            ring.submit().unwrap();
        }
        if each {
            ring.submit().unwrap();
        }
    };
    push(
        &mut ring,
        opcode::Accept::new(types::Fd(lfd), std::ptr::null_mut(), std::ptr::null_mut())
            .build()
            .user_data(ACCEPT),
    );
    let mut cq = Vec::with_capacity(1024);
    loop {
        ring.submit_and_wait(1).unwrap();
        cq.clear();
        cq.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &cq {
            let kind = ud & 7;
            let i = (ud >> 3) as usize;
            match kind {
                ACCEPT => {
                    push(
                        &mut ring,
                        opcode::Accept::new(
                            types::Fd(lfd),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                        )
                        .build()
                        .user_data(ACCEPT),
                    );
                    if res < 0 {
                        continue;
                    }
                    let cfd = res;
                    let _ = socket2::SockRef::from(&unsafe_fd(cfd)).set_nodelay(true);
                    turn += 1;
                    let up = TcpStream::connect(targets[turn % targets.len()]).unwrap();
                    up.set_nodelay(true).unwrap();
                    let c = Box::new(Conn {
                        client: cfd,
                        up: up.into_raw_fd(),
                        buf: Vec::with_capacity(8192),
                        rbuf: vec![0u8; 65536],
                        out: Vec::with_capacity(8192),
                    });
                    let slot = conns.iter().position(|c| c.is_none()).unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    conns[slot] = Some(c);
                    let c = conns[slot].as_mut().unwrap();
                    push(&mut ring, client_recv(c, slot));
                }
                CRECV => {
                    let c = conns[i].as_mut().unwrap();
                    if res <= 0 {
                        unsafe {
                            libc::close(c.client);
                            libc::close(c.up);
                        }
                        conns[i] = None;
                        continue;
                    }
                    unsafe { c.buf.set_len(c.buf.len() + res as usize) };
                    if let Some(end) = find(&c.buf, b"\r\n\r\n") {
                        c.out.clear();
                        c.out.extend_from_slice(&c.buf[..end + 2]);
                        c.out.extend_from_slice(b"x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-port: 8090\r\nx-request-id: 0b4c7a52-9d1e-4c3e-8f6a-2a1b3c4d5e6f\r\nx-amzn-trace-id: Root=1-67890abc-0123456789abcdef01234567\r\n\r\n");
                        c.buf.clear();
                        push(
                            &mut ring,
                            opcode::Send::new(types::Fd(c.up), c.out.as_ptr(), c.out.len() as u32)
                                .build()
                                .user_data((i as u64) << 3 | USEND),
                        );
                    } else {
                        c.buf.reserve(4096);
                        push(&mut ring, client_recv(c, i));
                    }
                }
                USEND => {
                    let c = conns[i].as_mut().unwrap();
                    assert_eq!(res as usize, c.out.len());
                    push(
                        &mut ring,
                        opcode::Recv::new(
                            types::Fd(c.up),
                            c.rbuf.as_mut_ptr(),
                            c.rbuf.len() as u32,
                        )
                        .build()
                        .user_data((i as u64) << 3 | URECV),
                    );
                }
                URECV => {
                    let c = conns[i].as_mut().unwrap();
                    assert!(res > 0, "upstream {res}");
                    // prototype: the whole response arrives at once; rewrite nothing but pass through
                    push(
                        &mut ring,
                        opcode::Send::new(types::Fd(c.client), c.rbuf.as_ptr(), res as u32)
                            .build()
                            .user_data((i as u64) << 3 | CSEND),
                    );
                }
                CSEND => {
                    let c = conns[i].as_mut().unwrap();
                    if res <= 0 {
                        continue;
                    }
                    push(&mut ring, client_recv(c, i));
                }
                _ => unreachable!(),
            }
        }
    }
}

struct Borrowed(RawFd);
impl AsRawFd for Borrowed {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}
impl std::os::fd::AsFd for Borrowed {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
    }
}
fn unsafe_fd(fd: RawFd) -> Borrowed {
    Borrowed(fd)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args[0].parse().unwrap();
    let targets: Vec<SocketAddr> = args[1..].iter().map(|t| t.parse().unwrap()).collect();
    let n = 2;
    let hs: Vec<_> = (0..n)
        .map(|i| {
            let t = targets.clone();
            std::thread::spawn(move || worker(port, t, i))
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}
