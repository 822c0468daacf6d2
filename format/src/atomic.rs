//! Files and folders replaced atomically: written under a temporary name in the destination's
//! folder (so the rename stays on one file system), then renamed over it. A reader, or a run
//! killed at any moment, sees the complete old version or the complete new one. A killed run
//! leaves a hidden `.NAME.PID.XXXXXX.{tmp,staging}` beside it, which nothing reads and
//! the next write of NAME removes once process PID is gone.

use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::{Builder, NamedTempFile, TempDir};

use crate::error::{Error, Result};

/// The folder holding `path` and its file name.
fn split(path: &Path) -> Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidArgument(format!("{}: not a file or folder name", path.display())))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_string()))
}

/// Suffixes of the temporaries this module creates.
const SUFFIXES: [&str; 2] = [".tmp", ".staging"];

/// The hidden prefix of this process's temporaries for `name`: `.NAME.PID.`.
fn hidden_prefix(name: &str) -> String {
    format!(".{name}.{}.", std::process::id())
}

/// A temporary name beside `prefix`'s file: `PREFIX XXXXXX SUFFIX`.
fn beside<'a>(prefix: &'a str, suffix: &'a str) -> Builder<'a, 'a> {
    let mut builder = Builder::new();
    builder.prefix(prefix).suffix(suffix).rand_bytes(6);
    builder
}

/// Removes the temporaries of `name` in `parent` left by processes that no longer run (a
/// killed writer). Only where /proc tells which processes run; elsewhere they stay, unread.
fn remove_stale(parent: &Path, name: &str) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let start = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&start)) else {
            continue;
        };
        let Some((pid, tail)) = rest.split_once('.') else {
            continue;
        };
        let ours = SUFFIXES.iter().any(|s| tail.ends_with(s));
        if !ours || pid.parse::<u32>().is_err() || proc.join(pid).exists() {
            continue;
        }
        // Another writer may remove it at the same moment: either way it is gone.
        let path = entry.path();
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes).map_err(Error::write(path))?;
    file.commit()
}

/// A file written in pieces under a temporary name beside `path` and renamed over it by
/// [`AtomicFile::commit`]; dropped uncommitted, it is removed. It gets the usual 0644
/// permissions (less the umask) that a plain create would give.
#[derive(Debug)]
pub struct AtomicFile {
    file: NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self> {
        let (parent, name) = split(path)?;
        remove_stale(&parent, &name);
        let hidden = hidden_prefix(&name);
        let mut builder = beside(&hidden, ".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let file = builder.tempfile_in(&parent).map_err(Error::write(path))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Flushes the data to disk and renames the file into place.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        self.file.as_file().sync_all().map_err(Error::write(&path))?;
        self.file
            .persist(&path)
            .map_err(|e| Error::write(&path)(e.error))?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A folder built under a temporary name beside its destination and swapped into place by
/// [`StagedDir::commit`]; dropped uncommitted, it is removed.
#[derive(Debug)]
pub struct StagedDir {
    staging: TempDir,
    target: PathBuf,
}

impl StagedDir {
    /// Creates the staging folder for `target` (whose parent is created if missing).
    pub fn new(target: &Path) -> Result<Self> {
        let (parent, name) = split(target)?;
        std::fs::create_dir_all(&parent).map_err(Error::write(&parent))?;
        remove_stale(&parent, &name);
        let hidden = hidden_prefix(&name);
        let staging = beside(&hidden, ".staging")
            .tempdir_in(&parent)
            .map_err(Error::write(target))?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
        })
    }

    /// Where to write the folder's files.
    pub fn path(&self) -> &Path {
        self.staging.path()
    }

    /// Puts the staged folder at the target. Where the target exists, the two folders are
    /// exchanged in one atomic rename (Linux `renameat2(RENAME_EXCHANGE)`), so no moment leaves
    /// the target missing; the old folder, now under the staging name, is removed last.
    pub fn commit(self) -> Result<()> {
        let target = self.target.clone();
        let staged = self.staging.keep();
        let swapped = if target.exists() {
            exchange(&staged, &target)
        } else {
            std::fs::rename(&staged, &target)
        };
        if let Err(e) = swapped {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(Error::write(&target)(e));
        }
        // After an exchange `staged` holds the replaced folder; a kill here leaves it for
        // `remove_stale`.
        let _ = std::fs::remove_dir_all(&staged);
        Ok(())
    }
}

/// Swaps two paths atomically.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them like rename(2).
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Where the kernel cannot exchange, the old folder moves aside first: a kill between the two
/// renames leaves the target missing (the old folder survives under its hidden name).
#[cfg(not(target_os = "linux"))]
fn exchange(staged: &Path, target: &Path) -> std::io::Result<()> {
    let aside = staged.with_extension("replaced");
    std::fs::rename(target, &aside)?;
    if let Err(e) = std::fs::rename(staged, target) {
        let _ = std::fs::rename(&aside, target);
        return Err(e);
    }
    std::fs::rename(&aside, staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn file_is_replaced_whole_and_no_temporary_remains() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.json");
        write_atomic(&path, b"old").expect("first write");
        write_atomic(&path, b"new").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert_eq!(names(dir.path()), ["out.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(
                mode & 0o044,
                0o044,
                "readable by others as a plain write would be: {mode:o}"
            );
        }
        let missing = write_atomic(&dir.path().join("no/such/folder/x"), b"x").expect_err("no folder");
        assert!(!missing.is_input(), "{missing}");
    }

    #[test]
    fn temporaries_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A pid above Linux's maximum (2^22) never runs; this process does.
        let dead = dir.path().join(".out.json.99999999.abcdef.tmp");
        let dead_folder = dir.path().join(".export.99999999.abcdef.staging");
        let live = dir
            .path()
            .join(format!(".out.json.{}.abcdef.tmp", std::process::id()));
        let other = dir.path().join(".out.json.notes");
        for file in [&dead, &live, &other] {
            std::fs::write(file, b"x").expect("write");
        }
        std::fs::create_dir(&dead_folder).expect("mkdir");
        write_atomic(&dir.path().join("out.json"), b"new").expect("write");
        StagedDir::new(&dir.path().join("export")).expect("stage");
        if Path::new("/proc/self").exists() {
            assert!(
                !dead.exists() && !dead_folder.exists(),
                "stale temporaries removed"
            );
        }
        assert!(
            live.exists() && other.exists(),
            "only dead writers' temporaries go"
        );
    }

    #[test]
    fn staged_folder_replaces_the_old_one_or_vanishes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("export");
        for version in ["one", "two"] {
            let staged = StagedDir::new(&target).expect("stage");
            std::fs::write(staged.path().join("file"), version).expect("write");
            staged.commit().expect("commit");
            assert_eq!(
                std::fs::read_to_string(target.join("file")).expect("read"),
                version
            );
        }
        let abandoned = StagedDir::new(&target).expect("stage");
        std::fs::write(abandoned.path().join("file"), "three").expect("write");
        drop(abandoned);
        assert_eq!(std::fs::read_to_string(target.join("file")).expect("read"), "two");
        assert_eq!(names(dir.path()), ["export"]);
    }
}
