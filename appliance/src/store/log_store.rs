//! The Raft log and vote in redb (`openraft::RaftLogStorage` and `RaftLogReader`).
//!
//! **Invariant:** an append or a vote is fsynced (a `Durability::Immediate` commit) before
//! openraft hears it is done: `append` calls its `IOFlushed` callback only after the commit
//! returns. Openraft merges queued appends into one call, so one fsync covers a batch.
//!
//! **Invariant:** the log has no holes: appends are consecutive, `truncate_after` removes a
//! suffix and `purge` a prefix, each in one transaction.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use redb::{Database, ReadableDatabase, ReadableTable};

use super::tables::{
    self, COMMITTED, LAST_PURGED, LOG, LOG_META, VOTE, begin_durable_write, blocking, decode,
    encode, get_value, io_error, put_value,
};
use super::types::{Entry, LogId, TypeConfig, Vote};

/// Handle on the log tables; cheap to clone, and every clone is also a log reader.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>) -> LogStore {
        LogStore { db }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = range.start_bound().cloned();
        let end = range.end_bound().cloned();
        if range_is_empty(start, end) {
            return Ok(Vec::new());
        }
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(io_error)?;
            let log = txn.open_table(LOG).map_err(io_error)?;
            let mut entries = Vec::new();
            for item in log.range::<u64>((start, end)).map_err(io_error)? {
                let (_, bytes) = item.map_err(io_error)?;
                entries.push(decode::<Entry>(bytes.value())?);
            }
            Ok(entries)
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        read_log_meta(&self.db, VOTE).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        blocking(&self.db, |db| {
            let txn = db.begin_read().map_err(io_error)?;
            let meta = txn.open_table(LOG_META).map_err(io_error)?;
            let last_purged_log_id: Option<LogId> = get_value(&meta, LAST_PURGED)?;
            let log = txn.open_table(LOG).map_err(io_error)?;
            let last_entry = match log.last().map_err(io_error)? {
                Some((_, bytes)) => Some(decode::<Entry>(bytes.value())?.log_id()),
                None => None,
            };
            Ok(LogState {
                last_log_id: last_entry.or(last_purged_log_id),
                last_purged_log_id,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = encode(vote)?;
        blocking(&self.db, move |db| {
            let txn = begin_durable_write(db)?;
            {
                let mut meta = txn.open_table(LOG_META).map_err(io_error)?;
                meta.insert(VOTE, bytes.as_slice()).map_err(io_error)?;
            }
            txn.commit().map_err(io_error)
        })
        .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        blocking(&self.db, move |db| {
            let mut txn = db.begin_write().map_err(io_error)?;
            // Not fsynced on its own: the state machine persists what it applied, so a lost
            // `committed` only means openraft re-learns it from the leader. It reaches the disk
            // with the next durable commit (the next append).
            txn.set_durability(redb::Durability::None)
                .map_err(io_error)?;
            {
                let mut meta = txn.open_table(LOG_META).map_err(io_error)?;
                match &committed {
                    Some(log_id) => put_value(&mut meta, COMMITTED, log_id)?,
                    None => {
                        meta.remove(COMMITTED).map_err(io_error)?;
                    }
                }
            }
            txn.commit().map_err(io_error)
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        read_log_meta(&self.db, COMMITTED).await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|entry| Ok((entry.index(), encode(&entry)?)))
            .collect::<io::Result<Vec<(u64, Vec<u8>)>>>()?;
        blocking(&self.db, move |db| {
            let txn = begin_durable_write(db)?;
            {
                let mut log = txn.open_table(LOG).map_err(io_error)?;
                for (index, bytes) in &encoded {
                    log.insert(index, bytes.as_slice()).map_err(io_error)?;
                }
            }
            txn.commit().map_err(io_error)
        })
        .await?;
        // The entries are readable (the commit is visible) and on disk: tell openraft.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index + 1);
        blocking(&self.db, move |db| {
            let txn = begin_durable_write(db)?;
            {
                let mut log = txn.open_table(LOG).map_err(io_error)?;
                log.retain_in::<u64, _>(first_removed.., |_, _| false)
                    .map_err(io_error)?;
            }
            txn.commit().map_err(io_error)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        blocking(&self.db, move |db| {
            let txn = begin_durable_write(db)?;
            {
                let mut log = txn.open_table(LOG).map_err(io_error)?;
                log.retain_in::<u64, _>(..=log_id.index, |_, _| false)
                    .map_err(io_error)?;
                let mut meta = txn.open_table(LOG_META).map_err(io_error)?;
                put_value(&mut meta, LAST_PURGED, &log_id)?;
            }
            txn.commit().map_err(io_error)
        })
        .await
    }
}

async fn read_log_meta<T>(db: &Arc<Database>, key: &'static str) -> io::Result<Option<T>>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    blocking(db, move |db| {
        let txn = db.begin_read().map_err(io_error)?;
        let meta = txn.open_table(LOG_META).map_err(io_error)?;
        tables::get_value(&meta, key)
    })
    .await
}

/// Whether a range of log indexes holds no index at all (such as `5..5` or `7..3`), which redb
/// must not be asked for.
fn range_is_empty(start: Bound<u64>, end: Bound<u64>) -> bool {
    let first = match start {
        Bound::Included(i) => Some(i),
        Bound::Excluded(i) => i.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let Some(first) = first else { return true };
    match end {
        Bound::Included(i) => first > i,
        Bound::Excluded(i) => first >= i,
        Bound::Unbounded => false,
    }
}
