//! Broker processes the resilience tests own: started on free loopback ports, SIGKILLed on
//! demand, and always killed when their guard drops.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A broker process; dropping it kills it.
pub struct Server {
    program: String,
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
}

impl Server {
    /// Starts `program args`, then waits until `port` accepts connections.
    pub fn start(program: &str, args: &[String], port: u16) -> Server {
        let mut server = Server {
            program: program.into(),
            args: args.to_vec(),
            port,
            child: None,
        };
        server.restart();
        server
    }

    /// SIGKILLs the process and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again with the same arguments (so on the same port).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program));
        self.child = Some(child);
        wait_listening(self.port);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (at most 10 s) until something accepts connections on `port`.
pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The nats-server binary: `CONFAB_NATS_SERVER`, else `nats-server` on the PATH or in /usr/sbin.
pub fn nats_server() -> String {
    program("CONFAB_NATS_SERVER", "nats-server")
}

/// The redis-server binary: `CONFAB_REDIS_SERVER`, else `redis-server` on the PATH.
pub fn redis_server() -> String {
    program("CONFAB_REDIS_SERVER", "redis-server")
}

fn program(var: &str, name: &str) -> String {
    if let Ok(p) = std::env::var(var) {
        return p;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .map_or_else(|| name.to_owned(), |p| p.display().to_string())
}

/// A standalone nats-server on a free port.
pub fn nats(port: u16) -> Server {
    let args = ["-a", "127.0.0.1", "-p", &port.to_string()].map(String::from);
    Server::start(&nats_server(), &args, port)
}

/// One member of a loopback NATS cluster, with a monitoring port to check its routes.
pub fn nats_member(port: u16, cluster: u16, monitor: u16, routes: &[u16]) -> Server {
    let routes: Vec<String> = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    let args = [
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-m".into(),
        monitor.to_string(),
        "--cluster_name".into(),
        "confabtest".into(),
        "--cluster".into(),
        format!("nats://127.0.0.1:{cluster}"),
        "--routes".into(),
        routes.join(","),
    ];
    Server::start(&nats_server(), &args, port)
}

/// Waits (at most 15 s) until the server monitored on `monitor` has `n` routes.
pub fn wait_routes(monitor: u16, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if http_get(monitor, "/routez")
            .and_then(|body| num_routes(&body))
            .is_some_and(|r| r >= n)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "NATS on monitor port {monitor} has no {n} routes after 15 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn num_routes(body: &str) -> Option<usize> {
    let rest = &body[body.find("\"num_routes\":")? + "\"num_routes\":".len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// A redis-server on a free port that keeps nothing on disk.
pub fn redis(port: u16) -> Server {
    let args = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(String::from);
    Server::start(&redis_server(), &args, port)
}
