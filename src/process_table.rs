//! What the program knows about processes: a lazy, cached view of the OS's process table
//! (`os::ProcessSource`) that reads a process's facts only when a decision needs them, and
//! the owner test (is this a Claude Code process?) with the ancestor walk built on it.

use std::collections::{BTreeMap, BTreeSet};

use crate::argv::split_args;
use crate::defaults;
use crate::os::{ProcInfo, ProcessSource, ReadError};

/// The names of processes that own sessions: `claude` and `claude.exe` unless `--owner`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerSet {
    names: Vec<String>,
}

impl Default for OwnerSet {
    fn default() -> Self {
        OwnerSet::new(
            defaults::OWNER_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    }
}

impl OwnerSet {
    pub fn new(names: Vec<String>) -> OwnerSet {
        OwnerSet { names }
    }

    fn is_name(&self, name: &[u8]) -> bool {
        self.names.iter().any(|n| n.as_bytes() == name)
    }

    /// comm is the first `comm_len` bytes of the executable's (or symlink's) name.
    pub fn is_owner_comm(&self, comm: &[u8], comm_len: usize) -> bool {
        self.names.iter().any(|n| {
            let n = n.as_bytes();
            comm == &n[..n.len().min(comm_len)]
        })
    }

    /// An argv[0] or executable path: its file name is an owner name, or it is a native
    /// install's versioned binary `…/<owner>/versions/<X.Y.Z>`.
    pub fn is_owner_path(&self, path: &[u8]) -> bool {
        let path = path.strip_suffix(b" (deleted)").unwrap_or(path);
        let mut parts = path.rsplit(|&b| b == b'/');
        let Some(file) = parts.next() else {
            return false;
        };
        if self.is_name(file) {
            return true;
        }
        let is_version = !file.is_empty()
            && file[0].is_ascii_digit()
            && file.iter().all(|b| b.is_ascii_digit() || *b == b'.');
        is_version
            && parts.next() == Some(b"versions")
            && parts.next().is_some_and(|p| self.is_name(p))
    }
}

/// Whether anything above a process owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ancestry {
    /// An owner process is an ancestor.
    Owned(i32),
    /// The walk reached the top of the tree and met no owner.
    NoOwner,
    /// A link could not be read (gone, hidden, another namespace, a loop): not an orphan.
    Unknown,
}

/// A cached view of the process table.
pub struct ProcessTable {
    pub source: Box<dyn ProcessSource>,
    owners: OwnerSet,
    stats: BTreeMap<i32, Result<ProcInfo, ReadError>>,
    owner_of: BTreeMap<i32, bool>,
    /// What `ancestry` found for each process a completed walk passed: a chain of N
    /// matches is walked once, not N times.
    above: BTreeMap<i32, Ancestry>,
    /// Parent links followed by every walk of this table (for the tests of its cost).
    hops: u64,
}

impl ProcessTable {
    pub fn new(source: Box<dyn ProcessSource>, owners: OwnerSet) -> ProcessTable {
        ProcessTable {
            source,
            owners,
            stats: BTreeMap::new(),
            owner_of: BTreeMap::new(),
            above: BTreeMap::new(),
            hops: 0,
        }
    }

    /// How many parent links the ancestor walks have followed so far: with the memo, at
    /// most one per process in the table, however many matches share a chain.
    pub fn hops(&self) -> u64 {
        self.hops
    }

    /// Forgets what was read of `pid` and reads its facts again: for a process just
    /// pinned, whose earlier reads may have been of a previous holder of its PID.
    pub fn reread(&mut self, pid: i32) -> Result<ProcInfo, ReadError> {
        self.stats.remove(&pid);
        self.owner_of.remove(&pid);
        self.above.remove(&pid);
        self.stat(pid)
    }

    /// The process's facts, read once per run.
    pub fn stat(&mut self, pid: i32) -> Result<ProcInfo, ReadError> {
        if let Some(s) = self.stats.get(&pid) {
            return s.clone();
        }
        let s = self.source.info(pid);
        self.stats.insert(pid, s.clone());
        s
    }

    /// Is this process an owner? By comm, then argv[0], then the executable path: each later
    /// test costs a read, and most processes are settled by the first.
    pub fn is_owner(&mut self, pid: i32) -> Result<bool, ReadError> {
        if let Some(&o) = self.owner_of.get(&pid) {
            return Ok(o);
        }
        let stat = self.stat(pid)?;
        let comm_len = self.source.platform().comm_len;
        let owner = self.owners.is_owner_comm(&stat.comm, comm_len)
            || self
                .source
                .argv(pid)
                .ok()
                .and_then(|c| {
                    split_args(c)
                        .first()
                        .map(|a0| self.owners.is_owner_path(a0))
                })
                .unwrap_or(false)
            || self
                .source
                .exe(pid)
                .is_some_and(|exe| self.owners.is_owner_path(&exe));
        self.owner_of.insert(pid, owner);
        Ok(owner)
    }

    /// Walks from `pid`'s parent to the top of the tree looking for an owner. The whole chain
    /// counts (an owner may be far up, or be PID 1 of a container), so the only limits are a
    /// loop check and a safety cap. The answer for every process the walk passed is kept:
    /// the next walk that reaches one of them stops there, so a whole scan follows each
    /// parent link once.
    pub fn ancestry(&mut self, pid: i32) -> Ancestry {
        let mut path: Vec<i32> = Vec::new();
        let mut on_path: BTreeSet<i32> = BTreeSet::new();
        let mut current = pid;
        let answer = loop {
            if let Some(&known) = self.above.get(&current) {
                break known;
            }
            if path.len() >= defaults::MAX_ANCESTRY_HOPS {
                // Cut off, not decided: only the walk's own start learns "unknown".
                path.truncate(1);
                break Ancestry::Unknown;
            }
            path.push(current);
            on_path.insert(current);
            let Ok(stat) = self.stat(current) else {
                break Ancestry::Unknown;
            };
            let parent = stat.ppid;
            if parent <= 0 {
                // The tops of the tree (init and kthreadd, launchd) have parent 0; anything
                // else with parent 0 was started from outside our PID namespace, by
                // something we cannot see.
                break if self.source.platform().roots.contains(&current) {
                    Ancestry::NoOwner
                } else {
                    Ancestry::Unknown
                };
            }
            if on_path.contains(&parent) {
                break Ancestry::Unknown;
            }
            self.hops += 1;
            match self.is_owner(parent) {
                Ok(true) => break Ancestry::Owned(parent),
                Ok(false) => {}
                Err(_) => break Ancestry::Unknown,
            }
            current = parent;
        };
        // Every process on the path has the same answer: the ones below `current` had
        // non-owner parents all the way up to it.
        for p in path {
            self.above.insert(p, answer);
        }
        answer
    }

    /// This process and its ancestors, which are never reported or signalled.
    pub fn self_and_ancestors(&mut self, me: i32) -> Vec<i32> {
        let mut chain = vec![me];
        let mut seen = BTreeSet::from([me]);
        let mut current = me;
        while chain.len() < defaults::MAX_ANCESTRY_HOPS {
            match self.stat(current) {
                Ok(s) if s.ppid > 0 && seen.insert(s.ppid) => {
                    chain.push(s.ppid);
                    current = s.ppid;
                }
                _ => break,
            }
        }
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_and_paths() {
        let o = OwnerSet::default();
        assert!(o.is_owner_comm(b"claude", 15));
        assert!(!o.is_owner_comm(b"claude-helper", 15));
        assert!(o.is_owner_path(b"/usr/local/bin/claude"));
        assert!(o.is_owner_path(b"claude"));
        assert!(o.is_owner_path(b"/home/u/.local/share/claude/versions/2.1.197"));
        assert!(o.is_owner_path(b"/home/u/.local/share/claude/versions/2.1.197 (deleted)"));
        assert!(!o.is_owner_path(b"/home/u/.local/share/other/versions/2.1.197"));
        assert!(!o.is_owner_path(b"/x/claude/versions/latest"));
        assert!(!o.is_owner_path(b"/usr/bin/node"));
        assert!(!o.is_owner_path(b""));
        // Not versions: an empty name, dots alone.
        assert!(!o.is_owner_path(b"/x/claude/versions/"));
        assert!(!o.is_owner_path(b"/x/claude/versions/.."));
        let long = OwnerSet::new(vec!["a-very-long-owner-name".into()]);
        assert!(long.is_owner_comm(b"a-very-long-own", 15));
        assert!(!long.is_owner_comm(b"a-very-long-own", 16));
    }
}
