//! `confab-floor --listen 127.0.0.1:PORT`: the benchmark ceiling (see the library docs).

use tokio::net::TcpSocket;

fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:8090".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "-h" | "--help" => {
                println!("confab-floor [--listen ADDR]: a minimal in-memory fan-out server");
                return Ok(());
            }
            other => eprintln!("confab-floor: ignoring unknown argument {other}"),
        }
    }
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(4096)?;
        eprintln!("confab-floor listening on {}", listener.local_addr()?);
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            Ok::<_, std::io::Error>(())
        };
        axum::serve(listener, confab_floor::router())
            .with_graceful_shutdown(async move {
                let _ = shutdown.await;
            })
            .await
    })
}
