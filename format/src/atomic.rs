//! Files and folders replaced atomically: written under a temporary name in the destination's
//! folder (so the rename stays on one file system), then renamed over it. A reader, or a run
//! killed at any moment, sees the complete old version or the complete new one; a killed run
//! leaves at most a hidden `.NAME.*` temporary beside it, which nothing reads.

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

/// A temporary name beside `name`: `.NAME.XXXXXX.SUFFIX`.
fn beside<'a>(name: &'a str, suffix: &'a str) -> Builder<'a, 'a> {
    let mut builder = Builder::new();
    builder.prefix(name).suffix(suffix).rand_bytes(6);
    builder
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
        let hidden = format!(".{name}.");
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
        let hidden = format!(".{name}.");
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

    /// Puts the staged folder at the target with renames only: an earlier folder there is
    /// moved aside first and removed last, or moved back if the swap fails.
    pub fn commit(self) -> Result<()> {
        let target = self.target.clone();
        let (parent, name) = split(&target)?;
        let staged = self.staging.keep();
        let aside = if target.exists() {
            let hidden = format!(".{name}.");
            let holder = beside(&hidden, ".replaced")
                .tempdir_in(&parent)
                .map_err(Error::write(&target))?;
            let aside = holder.path().join(&name);
            std::fs::rename(&target, &aside).map_err(Error::write(&target))?;
            Some((holder, aside))
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&staged, &target) {
            if let Some((_, aside)) = &aside {
                let _ = std::fs::rename(aside, &target);
            }
            let _ = std::fs::remove_dir_all(&staged);
            return Err(Error::write(&target)(e));
        }
        // `holder` removes the replaced folder when it drops.
        drop(aside);
        Ok(())
    }
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
