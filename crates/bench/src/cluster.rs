//! Several nodes measured as one server: `--nodes N` starts N `confab serve` processes over the
//! same store, bus and cache, or `--target` lists servers someone else runs. Connections go
//! round-robin over the nodes; CPU time and memory are summed over their processes.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::node::{External, Node, Spawned};
use crate::spec::ConnSpec;

/// Sends connection `i` to node `i mod n` (nothing to do for one node).
pub fn spread_over(conns: &mut [ConnSpec], urls: &[String]) {
    if urls.len() < 2 {
        return;
    }
    for (i, conn) in conns.iter_mut().enumerate() {
        conn.url = Some(urls[i % urls.len()].clone());
    }
}

/// The shared engines of started nodes (`None`: confab's embedded default).
#[derive(Debug, Clone, Default)]
pub struct Engines {
    pub store: Option<String>,
    pub bus: Option<String>,
    pub cache: Option<String>,
}

impl Engines {
    /// The `CONFAB_*` variables that point a node at these engines.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("CONFAB_STORE", &self.store),
            ("CONFAB_BUS", &self.bus),
            ("CONFAB_CACHE", &self.cache),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
        .collect()
    }

    /// Checks that `nodes` nodes can share these engines: one SQLite file or one in-process
    /// bus cannot be shared between processes.
    pub fn check(&self, nodes: usize) -> anyhow::Result<()> {
        if nodes <= 1 {
            return Ok(());
        }
        let store_ok = self
            .store
            .as_deref()
            .is_some_and(|s| s.starts_with("postgres"));
        anyhow::ensure!(
            store_ok,
            "--nodes {nodes} needs a shared store: --store postgres://..."
        );
        let bus_ok = self.bus.as_deref().is_some_and(|b| b != "memory");
        anyhow::ensure!(
            bus_ok,
            "--nodes {nodes} needs a shared bus: --bus nats://... or redis://..."
        );
        Ok(())
    }

    /// `postgres, nats, redis`: the engines' schemes, for labels.
    fn label(&self) -> String {
        let scheme = |v: &Option<String>| {
            v.as_deref()
                .map(|u| u.split("://").next().unwrap_or(u).to_string())
                .unwrap_or_else(|| "memory".into())
        };
        format!(
            "{}, {}, {}",
            scheme(&self.store).replace("memory", "sqlite"),
            scheme(&self.bus),
            scheme(&self.cache)
        )
    }
}

/// Nodes measured together.
pub struct Cluster {
    nodes: Vec<Box<dyn Node>>,
    label: String,
}

impl Cluster {
    /// Starts `n` confab nodes over `engines`.
    pub async fn confab(
        bin: Option<PathBuf>,
        n: usize,
        engines: &Engines,
    ) -> anyhow::Result<Cluster> {
        engines.check(n)?;
        let env = engines.env();
        let mut nodes: Vec<Box<dyn Node>> = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            nodes.push(Box::new(Spawned::confab(bin.clone(), &env).await?));
        }
        let label = format!("confab x{} ({})", nodes.len(), engines.label());
        Ok(Cluster { nodes, label })
    }

    /// Nodes started some other way (tests run theirs in-process).
    pub fn of(nodes: Vec<Box<dyn Node>>, label: &str) -> Cluster {
        Cluster {
            nodes,
            label: label.to_string(),
        }
    }

    /// Servers already running at `urls`.
    pub fn external(urls: &[&str]) -> Cluster {
        let nodes: Vec<Box<dyn Node>> = urls
            .iter()
            .map(|u| Box::new(External::new(u, None)) as Box<dyn Node>)
            .collect();
        let label = format!("external x{} ({})", nodes.len(), urls.join(", "));
        Cluster { nodes, label }
    }
}

#[async_trait]
impl Node for Cluster {
    fn base_url(&self) -> String {
        self.nodes.first().map(|n| n.base_url()).unwrap_or_default()
    }
    fn pid(&self) -> Option<u32> {
        self.nodes.first().and_then(|n| n.pid())
    }
    fn label(&self) -> String {
        self.label.clone()
    }
    /// Restarts every node, one after the other.
    async fn restart(&mut self, kill: bool) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.restart(kill).await?;
        }
        Ok(())
    }
    async fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop().await;
        }
    }
    fn restartable(&self) -> bool {
        self.nodes.iter().all(|n| n.restartable())
    }
    fn base_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base_url()).collect()
    }
    /// Empty unless every node's process is known: a partial sum would read as the whole.
    fn pids(&self) -> Vec<u32> {
        let pids: Option<Vec<u32>> = self.nodes.iter().map(|n| n.pid()).collect();
        pids.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(i: usize) -> ConnSpec {
        ConnSpec {
            name: format!("u{i}"),
            token: String::new(),
            rooms: Vec::new(),
            send: None,
            url: None,
        }
    }

    #[test]
    fn connections_go_round_robin_over_the_nodes() {
        let mut conns: Vec<ConnSpec> = (0..7).map(conn).collect();
        let urls = vec!["http://a".to_string(), "http://b".into(), "http://c".into()];
        spread_over(&mut conns, &urls);
        let got: Vec<&str> = conns.iter().filter_map(|c| c.url.as_deref()).collect();
        assert_eq!(
            got,
            [
                "http://a", "http://b", "http://c", "http://a", "http://b", "http://c", "http://a"
            ]
        );
    }

    #[test]
    fn one_node_leaves_the_connections_on_the_target() {
        let mut conns: Vec<ConnSpec> = (0..3).map(conn).collect();
        spread_over(&mut conns, &["http://a".to_string()]);
        assert!(conns.iter().all(|c| c.url.is_none()));
    }

    #[test]
    fn several_nodes_need_a_shared_store_and_bus() {
        let sqlite = Engines::default();
        assert!(sqlite.check(1).is_ok());
        assert!(sqlite.check(2).is_err());
        let no_bus = Engines {
            store: Some("postgres://db/x".into()),
            ..Engines::default()
        };
        assert!(no_bus.check(2).is_err());
        let shared = Engines {
            store: Some("postgres://db/x".into()),
            bus: Some("nats://127.0.0.1:4222".into()),
            cache: None,
        };
        assert!(shared.check(5).is_ok());
        assert_eq!(
            shared.env(),
            vec![
                ("CONFAB_STORE".to_string(), "postgres://db/x".to_string()),
                (
                    "CONFAB_BUS".to_string(),
                    "nats://127.0.0.1:4222".to_string()
                ),
            ]
        );
    }
}
