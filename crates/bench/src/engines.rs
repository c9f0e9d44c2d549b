//! The server's engines seen from /proc: the processes on this machine at the far end of the
//! connections the server opened (its PostgreSQL backends, the NATS, Redis or RabbitMQ
//! server), so a run can say what a delivery costs with the work the server hands them.
//!
//! A connection the server opened is one whose local port is not a port the server listens
//! on; its far end is the socket whose local and remote addresses are ours swapped. Engines
//! shared with other work (one Redis for the whole machine) are counted whole: on a bench
//! machine nothing else uses them.

use std::collections::HashSet;

use crate::procstat::{socket_inodes, tcp_sockets};

/// The processes (other than `pids`) holding the far end of the connections `pids` opened,
/// sorted; empty when none is visible (engines on other machines, or no permission).
pub fn engines_of(pids: &[u32]) -> Vec<u32> {
    let table = tcp_sockets();
    let ours: Vec<u64> = pids.iter().flat_map(|p| socket_inodes(*p)).collect();
    let listen_ports: HashSet<&str> = ours
        .iter()
        .filter_map(|i| table.get(i))
        .filter(|s| s.listening)
        .filter_map(|s| s.local_port())
        .collect();
    // (local, remote) of the far ends of our outbound connections.
    let far: HashSet<(&str, &str)> = ours
        .iter()
        .filter_map(|i| table.get(i))
        .filter(|s| !s.listening && s.local_port().is_some_and(|p| !listen_ports.contains(p)))
        .map(|s| (s.remote.as_str(), s.local.as_str()))
        .collect();
    if far.is_empty() {
        return Vec::new();
    }
    let far_inodes: HashSet<u64> = table
        .iter()
        .filter(|(_, s)| far.contains(&(s.local.as_str(), s.remote.as_str())))
        .map(|(i, _)| *i)
        .collect();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<u32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !pids.contains(pid))
        .filter(|pid| socket_inodes(*pid).iter().any(|i| far_inodes.contains(i)))
        .collect();
    found.sort_unstable();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn python(script: &str) -> std::process::Child {
        std::process::Command::new("python3")
            .args(["-c", script])
            .spawn()
            .expect("python3")
    }

    #[test]
    fn finds_the_process_at_the_far_end_of_an_outbound_connection() {
        // The engine: a child that listens; we connect to it.
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        let mut engine = python(&format!(
            "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('127.0.0.1',{port}))\ns.listen()\nc,_=s.accept()\nc.sendall(b'x')\ntime.sleep(30)\n"
        ));
        // A client: a child that connects to us. Our clients are not our engines.
        let ours = TcpListener::bind("127.0.0.1:0").expect("bind");
        let our_port = ours.local_addr().expect("addr").port();
        let mut client = python(&format!(
            "import socket,time\nc=socket.create_connection(('127.0.0.1',{our_port}))\n\
             c.sendall(b'y')\ntime.sleep(30)\n"
        ));
        let (mut accepted, _) = ours.accept().expect("accept");
        let mut byte = [0u8; 1];
        accepted.read_exact(&mut byte).expect("the client wrote");
        let mut conn = None;
        for _ in 0..100 {
            if let Ok(c) = TcpStream::connect(("127.0.0.1", port)) {
                conn = Some(c);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut conn = conn.expect("the engine listens");
        conn.read_exact(&mut byte).expect("accepted");
        conn.write_all(b"z").expect("write");

        let engines = engines_of(&[std::process::id()]);
        for child in [&mut engine, &mut client] {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert_eq!(engines, vec![engine.id()]);
    }

    #[test]
    fn nothing_for_a_process_without_connections() {
        assert!(engines_of(&[u32::MAX]).is_empty());
    }
}
