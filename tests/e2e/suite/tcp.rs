//! The TCP tools from a capture, against a workload with a known answer and libbpf-tools'
//! `tcplife` tracing the same kernel: this test process listens on 127.0.0.1 and accepts, a
//! workload process connects a known number of times (so the two sides of each connection have
//! different owners), then makes one SYN be retransmitted. The test process then moves known byte
//! counts over one connection, connects to a closed port (a reset sent and received) and aborts a
//! connection (SO_LINGER 0: a reset sent).
use std::{
    collections::BTreeSet,
    io::Read,
    io::Write,
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd,
    time::Duration,
};

use super::{peers::Peer, *};

const CONNECTIONS: usize = 6;

#[test]
fn tcp_tools_attribute_both_sides_and_agree_with_libbpf_tcplife() {
    require_root!();
    // Exact counts against a peer: alone, since other tests' tracers make the kernel skip runs.
    let _exclusive = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let rec = Recording::start(&cap, &["--events", "tcp,process", "--segment", "1s"]);
    let peer = Peer::start_when("tcplife", &[], "PID");
    // listen() in this process: the accepted connections are ours.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..CONNECTIONS {
            let (mut s, _) = listener.accept().unwrap();
            let mut b = [0u8];
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
            // Lives a little longer than the client's side.
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let child = workload()
        .args(["--tcp", &CONNECTIONS.to_string()])
        .args(["--tcp-to", &format!("127.0.0.1:{port}"), "--tcp-retransmit"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = child.id() as i64;
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "workload failed");
    server.join().unwrap();
    let retrans_port: u16 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("retransmit ")?.parse().ok())
        .expect("the workload prints the retransmit port");
    let (bulk_port, refused_port, aborted_port) = bytes_and_resets();
    std::thread::sleep(Duration::from_millis(500));
    let theirs = peer.stop_lines();
    rec.stop();
    let c = cap.to_str().unwrap();
    let me = std::process::id() as i64;

    // tcpconnect: every connect of the workload, owned by it.
    let conns = |tool: &str| {
        analyze_json(&[tool, c])["connections"]
            .as_array()
            .unwrap()
            .clone()
    };
    let to_port: Vec<_> = conns("tcpconnect")
        .into_iter()
        .filter(|c| c["rport"] == port)
        .collect();
    assert_eq!(to_port.len(), CONNECTIONS, "{to_port:?}");
    assert!(to_port.iter().all(|c| c["pid"] == client), "{to_port:?}");
    // tcpaccept: every accepted connection, owned by this process (the listener's owner), though
    // on loopback the handshake completes in the client's context.
    let accepted: Vec<_> = conns("tcpaccept")
        .into_iter()
        .filter(|c| c["lport"] == port)
        .collect();
    assert_eq!(accepted.len(), CONNECTIONS, "{accepted:?}");
    for a in &accepted {
        assert_eq!(
            (a["pid"].as_i64(), &a["owner_from"]),
            (Some(me), &"listen".into()),
            "{a}"
        );
    }
    // tcpconnlat: each connect's handshake, on loopback well under a second.
    let lat: Vec<_> = conns("tcpconnlat")
        .into_iter()
        .filter(|c| c["rport"] == port)
        .collect();
    assert_eq!(lat.len(), CONNECTIONS);
    for l in &lat {
        let ns = l["connect_latency_ns"].as_u64().unwrap();
        assert!(ns > 0 && ns < 1_000_000_000, "{l}");
    }
    // tcplife: both sides of each connection, each with its owner; the server's side lives at
    // least its 20 ms.
    let life: Vec<_> = conns("tcplife")
        .into_iter()
        .filter(|c| c["lport"] == port || c["rport"] == port)
        .collect();
    assert_eq!(life.len(), 2 * CONNECTIONS, "{life:?}");
    for l in &life {
        let (owner, ms) = (
            l["pid"].as_i64().unwrap(),
            l["lifetime_ns"].as_u64().unwrap(),
        );
        if l["lport"] == port {
            assert_eq!(owner, me, "{l}");
            assert!((20_000_000..5_000_000_000).contains(&ms), "{l}");
        } else {
            assert_eq!(owner, client, "{l}");
        }
    }
    // libbpf-tools' tcplife saw the same connections (local and remote ports).
    let ports = |lport: &str, rport: &str| -> Option<(u16, u16)> {
        Some((lport.parse().ok()?, rport.parse().ok()?))
    };
    let peer_pairs: BTreeSet<(u16, u16)> = theirs
        .iter()
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            ports(c.get(3)?, c.get(5)?)
        })
        .filter(|(l, r)| *l == port || *r == port)
        .collect();
    let our_pairs: BTreeSet<(u16, u16)> = life
        .iter()
        .map(|l| {
            (
                l["lport"].as_u64().unwrap() as u16,
                l["rport"].as_u64().unwrap() as u16,
            )
        })
        .collect();
    report(&format!(
        "tcplife: {} connections to port {port} (both sides), libbpf-tools {}",
        our_pairs.len(),
        peer_pairs.len()
    ));
    assert_eq!(our_pairs, peer_pairs, "peer: {theirs:?}");
    // tcpretrans: the dropped SYN, retransmitted in SYN_SENT, owned by the workload.
    let retrans: Vec<_> = conns("tcpretrans")
        .into_iter()
        .filter(|c| c["rport"] == retrans_port)
        .collect();
    assert_eq!(retrans.len(), 1, "{retrans:?}");
    let r = &retrans[0];
    assert_eq!(r["pid"], client, "{r}");
    let states: Vec<i64> = r["retransmits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[1].as_i64().unwrap())
        .collect();
    assert!(!states.is_empty() && states.iter().all(|&s| s == 2), "{r}");
    let text = run_ok("flightrec-analyze", &["tcpretrans", c]);
    assert!(
        text.contains(&format!(":{retrans_port}")) && text.contains("SYN_SENT"),
        "{text}"
    );

    // tcplife's byte counts: what each side sent and received (the kernel counts the SYN and FIN
    // as a byte each), and the same KiB as libbpf-tools' tcplife.
    let bulk: Vec<_> = conns("tcplife")
        .into_iter()
        .filter(|c| c["lport"] == bulk_port || c["rport"] == bulk_port)
        .filter(|c| c["lport"] != aborted_port && c["rport"] != aborted_port)
        .collect();
    assert_eq!(bulk.len(), 2, "{bulk:?}");
    for b in &bulk {
        let (tx, rx) = (
            b["tx_bytes"].as_u64().unwrap(),
            b["rx_bytes"].as_u64().unwrap(),
        );
        let (sent, received) = if b["rport"] == bulk_port {
            (BULK_UP, BULK_DOWN)
        } else {
            (BULK_DOWN, BULK_UP)
        };
        assert!((sent..=sent + 2).contains(&tx), "{b}");
        assert!((received..=received + 1).contains(&rx), "{b}");
        let peer = theirs
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|c| {
                c.get(3) == Some(&b["lport"].to_string().as_str())
                    && c.get(5) == Some(&b["rport"].to_string().as_str())
            })
            .unwrap_or_else(|| panic!("libbpf-tools' tcplife did not list {b}"));
        let kb = |s: &str| s.parse::<f64>().unwrap();
        assert_eq!(
            (kb(peer[6]), kb(peer[7])),
            (
                kb(&format!("{:.2}", tx as f64 / 1024.0)),
                kb(&format!("{:.2}", rx as f64 / 1024.0))
            ),
            "{peer:?} {b}"
        );
    }
    let bytes: Vec<_> = bulk
        .iter()
        .map(|b| (&b["tx_bytes"], &b["rx_bytes"]))
        .collect();
    report(&format!(
        "tcplife: bulk connection (tx, rx) per side {bytes:?}, as libbpf-tools"
    ));

    // tcpreset: the refused connect (a reset sent for no socket, received in SYN_SENT) and the
    // abortive close, all of this process.
    let resets = analyze_json(&["tcpreset", c])["resets"]
        .as_array()
        .unwrap()
        .clone();
    let find = |dir: &str, lport: u16| {
        resets
            .iter()
            .find(|r| r["direction"] == dir && r["lport"] == lport)
            .unwrap_or_else(|| panic!("no reset {dir} from port {lport}: {resets:?}"))
            .clone()
    };
    let refused = find("sent", refused_port);
    assert_eq!(refused["reason"], "NO_SOCKET", "{refused}");
    let client_side = find("received", refused["rport"].as_u64().unwrap() as u16);
    assert_eq!(
        (client_side["state"].as_str(), client_side["pid"].as_i64()),
        (Some("SYN_SENT"), Some(me))
    );
    let aborted = find("sent", aborted_port);
    assert_eq!(aborted["pid"], me, "{aborted}");
    assert_eq!(aborted["rport"], bulk_port, "{aborted}");
}

const BULK_UP: u64 = 300_000;
const BULK_DOWN: u64 = 70_000;

/// One connection to a listener of this process moving [`BULK_UP`] bytes to it and [`BULK_DOWN`]
/// back, a connect to a closed port, and a connection closed with SO_LINGER 0 (a reset). Returns
/// the listener's port, the closed port, and the aborted connection's local port.
fn bytes_and_resets() -> (u16, u16, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; BULK_UP as usize];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&vec![1u8; BULK_DOWN as usize]).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        // The second connection, aborted by its client.
        let (mut s, _) = listener.accept().unwrap();
        let _ = s.read_to_end(&mut rest);
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(&vec![2u8; BULK_UP as usize]).unwrap();
    let mut buf = vec![0u8; BULK_DOWN as usize];
    c.read_exact(&mut buf).unwrap();
    drop(c);
    // A port nobody listens on: bound, then closed.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(TcpStream::connect(("127.0.0.1", closed)).is_err());
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let aborted = c.local_addr().unwrap().port();
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setting an option on a socket we own, from a correctly sized value.
    let rc = unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    assert_eq!(rc, 0);
    drop(c);
    server.join().unwrap();
    (port, closed, aborted)
}
