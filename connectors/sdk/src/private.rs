//! Files that hold personal data, and the cells of the spreadsheets written for partners.
//!
//! The connector's state database (pivot traits in the outbox and the dead letters, local
//! copies of what the hub shared), the csv adapter's status file and its error reports all
//! name persons. They are created readable by the connector's own account only — files 0600,
//! the directories the connector creates 0700 — whatever the umask of whatever started it
//! (a service manager, a scheduled task, a shell).
//!
//! The csv adapter's files are opened in spreadsheets, which read a cell beginning with `=`,
//! `+`, `-` or `@` (or a tab or a carriage return) as a formula: another partner's free text
//! (`=HYPERLINK(…)`) would become a link or a computation on the partner's desk. Such a cell is
//! written with a leading `'`, which spreadsheets take as "this is text" (OWASP, CSV
//! injection). This includes harmless values such as a negative number or a local id starting
//! with `-`: people read these files, and a rule without exceptions is one that holds; the
//! extra `'` is visible but leaves the value recognisable.

use std::borrow::Cow;
use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of the files the connector writes: its own account reads and writes them, nobody else.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the directories the connector creates.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with mode 0700. A directory that already exists is
/// left as it is: it may be a folder the partner shares on purpose (a drop folder), whose access
/// is the partner's decision — and the files the connector writes in it are 0600 anyway.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Brings an existing file to mode 0600; a missing file is not an error.
pub fn restrict(path: &Path) -> io::Result<()> {
    match std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Creates `path` empty with mode 0600 when it is missing, or brings it to 0600 when it exists,
/// without touching its content: for a file another library opens afterwards (SQLite), which
/// would otherwise create it with the umask's mode.
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)?;
    // `mode` only applies to a file being created: an existing one is tightened here.
    file.set_permissions(Permissions::from_mode(FILE_MODE))
}

/// Distinguishes the temporary files of concurrent writers in this process.
static TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` whole, with mode 0600: into a temporary file beside it, then
/// renamed over it. A reader (a person opening the status file) never sees half a file, and a
/// file an earlier version left 0644 is replaced by a 0600 one rather than rewritten in place.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    // Beside the target: a rename within one file system is atomic.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        TEMPORARY.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_then_rename(&tmp, path, bytes);
    if written.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = create_new_private(tmp)?;
    file.write_all(bytes)?;
    // On disk before it takes the place of the old file: a crash leaves one or the other.
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

/// A new file with mode 0600, replacing a leftover of a crashed run: for a file written as a
/// stream and renamed into place once complete.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    create_new_private(path)
}

/// A new file with mode 0600. `create_new` never opens what is already there (a link planted
/// at that name); a leftover of a crashed run with the same name is removed first.
fn create_new_private(path: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)
    };
    let file = match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            open()?
        }
        other => other?,
    };
    // The umask can only take bits away from 0600; this makes the mode exactly 0600 even under
    // an unusual one, so what the partner's administrator sees is always the same.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// `cell`, safe to open in a spreadsheet: prefixed with `'` when it begins with `=`, `+`, `-`,
/// `@`, a tab or a carriage return, which spreadsheets read as the start of a formula (see the
/// module's documentation for why every such cell, negative numbers included). A cell already
/// made safe begins with `'` and comes back unchanged, so a file read back and rewritten does
/// not pile up quotes.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn written_files_are_0600_and_created_directories_0700() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("etat").join("statuts");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("etat")), 0o700, "parents too");

        let file = dir.join("relais-statuts.csv");
        write_private(&file, b"first").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"first");

        // A file left world-readable by an earlier version is replaced by a private one.
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        write_private(&file, b"second").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"second");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left behind: {left:?}");
    }

    #[test]
    fn an_existing_file_is_tightened_without_losing_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("connector.db");
        ensure_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::write(&db, b"data").unwrap();
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        ensure_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(std::fs::read(&db).unwrap(), b"data");
        restrict(&dir.path().join("connector.db-wal")).unwrap();
    }

    #[test]
    fn formula_cells_are_neutralised_and_text_is_left_alone() {
        let link = spreadsheet_safe("=HYPERLINK(\"http://x\",\"y\")");
        assert!(link.starts_with('\''), "{link}");
        assert_eq!(link, "'=HYPERLINK(\"http://x\",\"y\")");
        for cell in ["+33 5 61 00 00 00", "-12", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_safe(cell), format!("'{cell}"));
        }
        assert!(matches!(
            spreadsheet_safe("Castet"),
            Cow::Borrowed("Castet")
        ));
        assert_eq!(spreadsheet_safe(""), "");
        assert_eq!(spreadsheet_safe("a=b"), "a=b");
        assert_eq!(spreadsheet_safe(&link), link, "made safe once");
    }
}
