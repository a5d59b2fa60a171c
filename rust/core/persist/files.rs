//! Durable file replacement and the single-writer lock shared by snapshots (`save`) and the
//! operation log (`OpLog::create`).
//!
//! A file is replaced by writing a temporary file with a unique name in the same directory,
//! fsyncing it, renaming it over the target and fsyncing the directory: a crash leaves the
//! old file or the new one, and concurrent writers never share a temporary file. Targets
//! that exist and are not regular files (symlinks, device nodes, directories) are refused.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::core::units::error::{AdlError, Result};

pub fn io_err(path: &Path, e: io::Error) -> AdlError {
    AdlError::Io { path: path.display().to_string(), message: e.to_string() }
}

fn refused(path: &Path, message: &str) -> AdlError {
    AdlError::Io { path: path.display().to_string(), message: message.to_string() }
}

/// The directory a path lives in ("." for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Refuses a target that exists and is not a regular file (a symlink is not followed).
pub fn check_target(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(Some(m)),
        Ok(m) if m.file_type().is_symlink() => Err(refused(path, "is a symbolic link; give the real path of a regular file")),
        Ok(_) => Err(refused(path, "exists and is not a regular file (device, directory, socket or pipe)")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

/// Whether two metadata describe the same file (same device and inode).
#[cfg(unix)]
pub fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
pub fn same_file(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    false
}

/// Takes the exclusive lock of an open file without waiting; `Ok(false)` when another open
/// file (another engine, here or in another process) holds it.
pub fn try_lock(f: &File) -> io::Result<bool> {
    match f.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Replaces `path` by `bytes` durably (see the module doc) and returns the new file, open
/// for reading and writing, its cursor at the end. With `lock`, the new file is locked
/// before it appears at `path`, and the file it replaces must not be locked by anyone
/// else (unless it is `held`, a file the caller itself holds locked).
pub fn replace(path: &Path, bytes: &[u8], lock: bool, held: Option<&File>) -> Result<File> {
    let existing = check_target(path)?;
    // Keep the old file's lock until the new file has replaced it, so that two writers
    // racing for one path cannot both win.
    let mut _old_guard: Option<File> = None;
    if lock {
        let held_meta = held.map(|f| f.metadata()).transpose().map_err(|e| io_err(path, e))?;
        let ours = matches!((&existing, &held_meta), (Some(a), Some(b)) if same_file(a, b));
        if !ours {
            // Lock whatever is at `path` now (creating a placeholder if nothing is), so a
            // concurrent writer sees a locked file whichever step it is at.
            let f = match existing {
                Some(_) => File::open(path),
                None => fs::OpenOptions::new().write(true).create(true).truncate(false).open(path),
            }
            .map_err(|e| io_err(path, e))?;
            if !try_lock(&f).map_err(|e| io_err(path, e))? {
                return Err(refused(path, "is locked by another engine (one writer per log)"));
            }
            // The placeholder we created may not be a regular file if something raced in.
            check_target(path)?;
            _old_guard = Some(f);
        }
    }
    let dir = parent(path);
    let write = || -> io::Result<File> {
        let mut b = tempfile::Builder::new();
        b.prefix(".adl-").suffix(".tmp");
        // Like a file created by open(2): read-write for everyone the umask allows.
        #[cfg(unix)]
        b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let mut tmp = b.tempfile_in(dir)?;
        if lock && !try_lock(tmp.as_file())? {
            return Err(io::Error::other("could not lock a new temporary file"));
        }
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        let f = tmp.persist(path).map_err(|e| e.error)?;
        File::open(dir)?.sync_all()?;
        Ok(f)
    };
    write().map_err(|e| {
        // Leave no empty placeholder behind.
        if lock && existing.is_none() {
            let _ = fs::remove_file(path);
        }
        io_err(path, e)
    })
}
