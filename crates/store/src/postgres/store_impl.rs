//! `Store` for `PgStore`: each call routed to the directory, to the room's shard, or to all
//! shards at once.

use async_trait::async_trait;
use confab_domain::RuleError;
use confab_domain::text::{RoomName, UserName};
use confab_protocol::{Room, UserRef, Visibility};
use futures_util::future::try_join_all;

use super::ops::Op;
use super::writer::Reply;
use super::{NO_USER, PgStore, directory, now_ms, read, shard};
use crate::{
    Append, Appended, Change, EventRange, Page, RoomInfo, Store, StoreError, StoreResult,
    TokenRecord, UserRecord,
};

impl PgStore {
    /// Runs `query` on each of `shards` at once and gathers the rows.
    async fn on_shards<T, F, Fut>(&self, shards: &[usize], query: F) -> StoreResult<Vec<T>>
    where
        F: Fn(sqlx::PgPool) -> Fut,
        Fut: Future<Output = StoreResult<Vec<T>>>,
    {
        self.open()?;
        let pools = shards
            .iter()
            .filter_map(|&i| self.shards.get(i))
            .map(|s| query(s.pool.clone()));
        Ok(try_join_all(pools).await?.into_iter().flatten().collect())
    }
}

#[async_trait]
impl Store for PgStore {
    async fn create_user(&self, name: &UserName, password_hash: &str) -> StoreResult<UserRef> {
        directory::create_user(self.dir()?, now_ms(), name.as_str(), password_hash).await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        read::user_by_name(self.dir()?, name).await
    }

    async fn find_user(&self, id_or_name: &str) -> StoreResult<Option<UserRef>> {
        let dir = self.dir()?;
        if let Some(user) = read::user_by_id(dir, id_or_name).await? {
            return Ok(Some(user));
        }
        let folded = id_or_name.to_ascii_lowercase();
        Ok(read::user_by_name(dir, &folded).await?.map(|r| r.user))
    }

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_ts: i64,
    ) -> StoreResult<()> {
        directory::create_token(self.dir()?, token_hash, user_id, expires_ts).await
    }

    async fn token(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>> {
        read::token(self.dir()?, token_hash).await
    }

    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool> {
        directory::revoke_token(self.dir()?, token_hash).await
    }

    async fn room(&self, room_id: &str) -> StoreResult<Option<RoomInfo>> {
        match self.shard_of(room_id)? {
            Some((_, shard)) => read::room(&shard.pool, room_id).await,
            None => Ok(None),
        }
    }

    async fn membership(&self, room_id: &str, user_id: &str) -> StoreResult<Option<u64>> {
        match self.shard_of(room_id)? {
            Some((_, shard)) => read::membership(&shard.pool, room_id, user_id).await,
            None => Ok(None),
        }
    }

    async fn rooms_of(&self, user_id: &str) -> StoreResult<Vec<Room>> {
        let shards = read::user_shards(self.dir()?, user_id).await?;
        let mut rooms = self
            .on_shards(&shards, |pool| async move {
                read::rooms_of(&pool, user_id).await
            })
            .await?;
        rooms.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rooms)
    }

    async fn public_rooms(&self, query: &str, limit: u32) -> StoreResult<Vec<Room>> {
        let all: Vec<usize> = (0..self.shards.len()).collect();
        let mut rooms = self
            .on_shards(&all, |pool| async move {
                read::public_rooms(&pool, query, limit).await
            })
            .await?;
        rooms.sort_by_cached_key(|r| (r.name.to_lowercase(), r.id.clone()));
        rooms.truncate(limit as usize);
        Ok(rooms)
    }

    async fn members(&self, room_id: &str) -> StoreResult<Vec<UserRef>> {
        match self.shard_of(room_id)? {
            Some((_, shard)) => read::members(&shard.pool, room_id).await,
            None => Ok(Vec::new()),
        }
    }

    async fn events(&self, room_id: &str, range: EventRange, limit: u32) -> StoreResult<Page> {
        match self.shard_of(room_id)? {
            Some((_, shard)) => read::events(&shard.pool, room_id, range, limit).await,
            None => Ok(Page {
                events: Vec::new(),
                has_more: false,
            }),
        }
    }

    async fn create_room(
        &self,
        owner: &UserRef,
        name: &RoomName,
        visibility: Visibility,
    ) -> StoreResult<Change> {
        self.open()?;
        let index = shard::pick(self.shards.len());
        self.note(&owner.id, index).await?;
        let op = Op::CreateRoom {
            room_id: shard::new_room_id(index),
            owner: owner.clone(),
            name: name.as_str().to_owned(),
            visibility,
        };
        self.write(&self.shards[index], op, Reply::Change).await
    }

    async fn open_dm(&self, a: &UserRef, b: &UserRef) -> StoreResult<Change> {
        if a.id == b.id {
            return Err(
                RuleError::BadRequest("a direct conversation needs two different users").into(),
            );
        }
        let dir = self.dir()?;
        for user in [a, b] {
            if read::user_by_id(dir, &user.id).await?.is_none() {
                return Err(NO_USER.into());
            }
        }
        let dm_key = if a.id < b.id {
            format!("{}:{}", a.id, b.id)
        } else {
            format!("{}:{}", b.id, a.id)
        };
        let room_id = match read::dm_room(dir, &dm_key).await? {
            Some(room_id) => room_id,
            None => {
                let index = shard::pick(self.shards.len());
                directory::claim_dm(dir, &dm_key, &shard::new_room_id(index)).await?
            }
        };
        let Some((index, shard)) = self.shard_of(&room_id)? else {
            return Err(StoreError::Config(format!(
                "the DM {room_id} is on a shard missing from the configuration"
            )));
        };
        self.note(&a.id, index).await?;
        self.note(&b.id, index).await?;
        let op = Op::OpenDm {
            room_id,
            dm_key,
            a: a.clone(),
            b: b.clone(),
        };
        self.write(shard, op, Reply::Change).await
    }

    async fn join(&self, room_id: &str, user: &UserRef) -> StoreResult<Change> {
        let (index, shard) = self.writing(room_id)?;
        self.note(&user.id, index).await?;
        let op = Op::Join {
            room_id: room_id.to_owned(),
            user: user.clone(),
        };
        self.write(shard, op, Reply::Change).await
    }

    async fn leave(&self, room_id: &str, user: &UserRef) -> StoreResult<Change> {
        let (_, shard) = self.writing(room_id)?;
        let op = Op::Leave {
            room_id: room_id.to_owned(),
            user: user.clone(),
        };
        self.write(shard, op, Reply::Change).await
    }

    async fn add_member(
        &self,
        room_id: &str,
        actor: &UserRef,
        target: &UserRef,
    ) -> StoreResult<Change> {
        let (index, shard) = self.writing(room_id)?;
        let target_exists = read::user_by_id(self.dir()?, &target.id).await?.is_some();
        if target_exists {
            self.note(&target.id, index).await?;
        }
        let op = Op::AddMember {
            room_id: room_id.to_owned(),
            actor: actor.clone(),
            target: target.clone(),
            target_exists,
        };
        self.write(shard, op, Reply::Change).await
    }

    async fn remove_member(
        &self,
        room_id: &str,
        actor: &UserRef,
        target: &UserRef,
    ) -> StoreResult<Change> {
        let (_, shard) = self.writing(room_id)?;
        let op = Op::RemoveMember {
            room_id: room_id.to_owned(),
            actor: actor.clone(),
            target: target.clone(),
        };
        self.write(shard, op, Reply::Change).await
    }

    async fn append(&self, room_id: &str, user: &UserRef, append: Append) -> StoreResult<Appended> {
        let (_, shard) = self.writing(room_id)?;
        let op = Op::Append {
            room_id: room_id.to_owned(),
            user: user.clone(),
            append,
        };
        self.write(shard, op, Reply::Appended).await
    }

    async fn set_read(&self, room_id: &str, user_id: &str, seq: u64) -> StoreResult<Option<u64>> {
        let (_, shard) = self.writing(room_id)?;
        let op = Op::SetRead {
            room_id: room_id.to_owned(),
            user_id: user_id.to_owned(),
            seq,
        };
        self.write(shard, op, Reply::Read).await
    }

    async fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        for lane in self.shards.iter().flat_map(|s| &s.lanes) {
            let (done, finished) = tokio::sync::oneshot::channel();
            let shutdown = super::writer::Command::Shutdown { done };
            if lane.commands.send(shutdown).await.is_ok() {
                // An error means the writer already stopped.
                let _ = finished.await;
            }
            let task = lane.writer.lock().ok().and_then(|mut w| w.take());
            if let Some(task) = task
                && task.await.is_err()
            {
                tracing::error!("a PostgreSQL writer task panicked");
            }
        }
        for shard in &self.shards {
            shard.pool.close().await;
        }
    }
}
