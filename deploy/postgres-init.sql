-- The two shard databases of deploy/compose.yaml (confab creates its tables at start-up).
CREATE DATABASE shard0;
CREATE DATABASE shard1;
