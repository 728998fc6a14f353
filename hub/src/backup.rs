//! Backups of a hub's data directory while it runs (`relais admin backup`), and their restore
//! into a new directory (`relais admin restore`).
//!
//! A backup is a directory laid out like a data directory, so that restoring is copying it:
//! `relais.db` (SQLite, a consistent snapshot taken with `VACUUM INTO` — a read transaction,
//! which never blocks the hub's writes), `matching.key` (without it no person is ever matched
//! again), `tls/` (the CA, its key and the server's certificate), `admin/` (the administrator
//! bundle), and `backup.json`, the manifest: when, which version and schema, and the SHA-256 of
//! every file, checked at restore. Keys are written 0600 in directories 0700: a backup is as
//! sensitive as the hub itself. On PostgreSQL the database is backed up with `pg_dump` (the
//! manifest and the README say how); the keys and TLS files are still copied here.

use crate::config::Config;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What `backup.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// RFC 3339, UTC.
    pub created_at: String,
    pub relais_version: String,
    /// `sqlite` (the database is in the backup) or `postgresql` (see `postgresql`).
    pub database: String,
    /// For PostgreSQL: how to dump and restore the database, which this backup does not hold.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub postgresql: String,
    /// The newest schema version (migration) in the backed-up database, for SQLite.
    #[serde(default)]
    pub schema_version: i64,
    /// Every file, relative to the backup, with its SHA-256 and size.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

const MANIFEST: &str = "backup.json";

fn sha256_of(path: &Path) -> anyhow::Result<(String, u64)> {
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// Creates `dir` (0700), which must not exist or be empty.
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.exists() {
        anyhow::ensure!(
            dir.read_dir()
                .with_context(|| format!("reading {}", dir.display()))?
                .next()
                .is_none(),
            "{} is not empty: choose a new directory (a backup or a restore never overwrites)",
            dir.display()
        );
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    } else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// Copies `from` to `dir/name`, private (0600) when `private`.
fn copy_into(from: &Path, dir: &Path, name: &str, private: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let to = dir.join(name);
    if let Some(parent) = to.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    std::fs::copy(from, &to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(
        &to,
        std::fs::Permissions::from_mode(if private { 0o600 } else { 0o644 }),
    )?;
    Ok(())
}

/// The files of a data directory a backup holds besides the database: (source, name in the
/// backup, private).
fn key_files(config: &Config) -> Vec<(PathBuf, &'static str, bool)> {
    let tls = config.tls_paths();
    vec![
        (config.matching_key_path(), "matching.key", true),
        (tls.ca_cert, "tls/ca.pem", false),
        (tls.ca_key, "tls/ca.key", true),
        (tls.server_cert, "tls/server.pem", false),
        (tls.server_key, "tls/server.key", true),
        (tls.admin_bundle, "admin/admin.bundle.pem", true),
    ]
}

/// Backs up the hub of `config` into `to` while it runs. Returns the manifest written.
pub async fn backup(config: &Config, to: &Path) -> anyhow::Result<Manifest> {
    let url = config.database_url();
    let sqlite = url.starts_with("sqlite:");
    let matching = config.matching_key_path();
    anyhow::ensure!(
        matching.exists(),
        "{} does not exist: is {} the data directory of a hub that has started once? (--config or --data-dir)",
        matching.display(),
        config.data_dir.display()
    );
    fresh_dir(to)?;
    let mut schema_version = 0;
    let mut postgresql = String::new();
    if sqlite {
        let db = config.data_dir.join("relais.db");
        let db = match url.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => db,
        };
        anyhow::ensure!(db.exists(), "no database at {}", db.display());
        schema_version = snapshot(&db, &to.join("relais.db")).await?;
    } else {
        postgresql = format!(
            "The database is on PostgreSQL and is not in this directory. Dump it beside this backup, \
             at the same time: pg_dump --format=custom --file={}/relais.pgdump '<database_url>' ; \
             restore it into an empty database with: pg_restore --no-owner --dbname='<new database_url>' relais.pgdump",
            to.display()
        );
    }
    for (from, name, private) in key_files(config) {
        if from.exists() {
            copy_into(&from, to, name, private)?;
        } else if name != "admin/admin.bundle.pem" {
            anyhow::bail!(
                "{} is missing: the backup would not be usable",
                from.display()
            );
        }
    }
    let manifest = Manifest {
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?,
        relais_version: env!("CARGO_PKG_VERSION").into(),
        database: if sqlite { "sqlite" } else { "postgresql" }.into(),
        postgresql,
        schema_version,
        files: list(to)?,
    };
    crate::pki::write_private(
        &to.join(MANIFEST),
        &serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(manifest)
}

/// A consistent copy of a live SQLite database (`VACUUM INTO`, a read transaction: the hub
/// keeps writing meanwhile), checked with `PRAGMA integrity_check`. Returns its schema version.
async fn snapshot(db: &Path, to: &Path) -> anyhow::Result<i64> {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;
    let mut source = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    sqlx::query("VACUUM INTO ?")
        .bind(to.display().to_string())
        .execute(&mut source)
        .await
        .with_context(|| format!("copying {} to {}", db.display(), to.display()))?;
    drop(source);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    }
    check_database(to).await
}

/// `PRAGMA integrity_check` and the schema version of a database file.
async fn check_database(db: &Path) -> anyhow::Result<i64> {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;
    let mut copy = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut copy)
        .await?;
    anyhow::ensure!(
        check == "ok",
        "{} fails its integrity check: {check}",
        db.display()
    );
    let (version,): (i64,) =
        sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
            .fetch_one(&mut copy)
            .await
            .context("the database has no schema version: not a Relais database")?;
    Ok(version)
}

/// Every file under `dir` but the manifest, with its digest.
fn list(dir: &Path) -> anyhow::Result<Vec<FileEntry>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<FileEntry>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
                continue;
            }
            let name = path
                .strip_prefix(base)?
                .to_string_lossy()
                .replace('\\', "/");
            if name == MANIFEST {
                continue;
            }
            let (sha256, bytes) = sha256_of(&path)?;
            out.push(FileEntry {
                path: name,
                sha256,
                bytes,
            });
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Restores the backup `from` into the new data directory `data_dir` (which must not exist
/// or be empty), after checking every file against the manifest and the database's integrity.
pub async fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read_to_string(from.join(MANIFEST)).with_context(|| {
        format!(
            "{} has no {MANIFEST}: not a backup made by `relais admin backup`",
            from.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text).context("reading the manifest")?;
    for file in &manifest.files {
        anyhow::ensure!(
            !file.path.starts_with('/') && !file.path.split('/').any(|p| p == ".."),
            "the manifest names a file outside the backup: {}",
            file.path
        );
        let (sha256, bytes) = sha256_of(&from.join(&file.path))?;
        anyhow::ensure!(
            sha256 == file.sha256 && bytes == file.bytes,
            "{} does not match the manifest: the backup is damaged or was changed",
            file.path
        );
    }
    anyhow::ensure!(
        manifest.files.iter().any(|f| f.path == "matching.key"),
        "the backup has no matching key"
    );
    if manifest.database == "sqlite" {
        check_database(&from.join("relais.db")).await?;
    }
    fresh_dir(data_dir)?;
    for file in &manifest.files {
        let private = file.path.ends_with(".key")
            || file.path.ends_with(".db")
            || file.path.starts_with("admin/");
        copy_into(&from.join(&file.path), data_dir, &file.path, private)?;
    }
    Ok(manifest)
}
