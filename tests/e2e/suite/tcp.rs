//! The TCP tools from a capture, against a workload with a known answer and libbpf-tools'
//! `tcplife` tracing the same kernel: this test process listens on 127.0.0.1 and accepts, a
//! workload process connects a known number of times (so the two sides of each connection have
//! different owners), then makes one SYN be retransmitted.
use std::{collections::BTreeSet, io::Read, io::Write, net::TcpListener, time::Duration};

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
}
