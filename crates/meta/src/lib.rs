//! berth's one metadata database.
//!
//! Every subsystem (images, containers, networks, volumes, build cache) keeps its records here, in
//! one redb file, so a change that touches several kinds of record (untag + delete an image and
//! its layers) commits atomically or not at all. Values are JSON: easy to read when debugging and
//! tolerant of fields added later. A crash can never leave a half-written record.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("metadata database: {0}")]
    Db(String),
    #[error("metadata record {key:?} in {table}: {source}")]
    Decode {
        table: &'static str,
        key: String,
        source: serde_json::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Db(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, Error>;

/// A named table of JSON records keyed by string.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    pub name: &'static str,
}

impl Table {
    pub const fn new(name: &'static str) -> Self {
        Table { name }
    }
    fn def(&self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(self.name)
    }
}

/// The database handle. Cheap to share behind an `Arc`; redb serializes write transactions.
pub struct Db {
    db: redb::Database,
}

impl Db {
    /// Opens (or creates) the database file. A modest cache keeps berthd's idle memory small.
    pub fn open(path: &Path) -> Result<Db> {
        let db = redb::Builder::new().set_cache_size(8 << 20).create(path)?;
        Ok(Db { db })
    }

    /// Runs `f` in a read transaction.
    pub fn read<T>(&self, f: impl FnOnce(&Reader) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read()?;
        f(&Reader { txn })
    }

    /// Runs `f` in a write transaction, committed (durably) only if `f` returns Ok.
    /// The error type is the caller's so domain errors (conflict, not found) pass through.
    pub fn write<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut Writer) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let txn = self.db.begin_write().map_err(Error::from)?;
        let mut w = Writer { txn };
        let out = f(&mut w)?;
        w.txn.commit().map_err(Error::from)?;
        Ok(out)
    }
}

fn decode<T: DeserializeOwned>(table: &'static str, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Decode {
        table,
        key: key.to_string(),
        source,
    })
}

pub struct Reader {
    txn: redb::ReadTransaction,
}

impl Reader {
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        let t = match self.txn.open_table(table.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match t.get(key)? {
            Some(v) => Ok(Some(decode(table.name, key, v.value())?)),
            None => Ok(None),
        }
    }

    /// All records of a table, in key order.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>> {
        let t = match self.txn.open_table(table.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let key = k.value().to_string();
            let val = decode(table.name, &key, v.value())?;
            out.push((key, val));
        }
        Ok(out)
    }
}

pub struct Writer {
    txn: redb::WriteTransaction,
}

impl Writer {
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        let t = self.txn.open_table(table.def())?;
        match t.get(key)? {
            Some(v) => Ok(Some(decode(table.name, key, v.value())?)),
            None => Ok(None),
        }
    }

    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>> {
        let t = self.txn.open_table(table.def())?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let key = k.value().to_string();
            let val = decode(table.name, &key, v.value())?;
            out.push((key, val));
        }
        Ok(out)
    }

    pub fn put<T: Serialize>(&mut self, table: Table, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).expect("records serialize");
        let mut t = self.txn.open_table(table.def())?;
        t.insert(key, bytes.as_slice())?;
        Ok(())
    }

    /// Removes a record; returns whether it existed.
    pub fn delete(&mut self, table: Table, key: &str) -> Result<bool> {
        let mut t = self.txn.open_table(table.def())?;
        let existed = t.remove(key)?.is_some();
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Table = Table::new("things");

    #[test]
    fn put_get_list_delete_and_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("meta.db")).unwrap();
        assert_eq!(db.read(|r| r.get::<u32>(T, "a")).unwrap(), None);
        db.write(|w| -> Result<()> {
            w.put(T, "a", &1u32)?;
            w.put(T, "b", &2u32)
        })
        .unwrap();
        // A failing transaction leaves nothing behind.
        let failed: std::result::Result<(), Error> = db.write(|w| {
            w.put(T, "c", &3u32)?;
            Err(Error::Db("boom".into()))
        });
        assert!(failed.is_err());
        let all = db.read(|r| r.list::<u32>(T)).unwrap();
        assert_eq!(all, vec![("a".into(), 1), ("b".into(), 2)]);
        assert!(db.write(|w| w.delete(T, "a")).unwrap());
        assert!(!db.write(|w| w.delete(T, "a")).unwrap());
        drop(db);
        let db = Db::open(&dir.path().join("meta.db")).unwrap();
        assert_eq!(db.read(|r| r.get::<u32>(T, "b")).unwrap(), Some(2));
    }
}
