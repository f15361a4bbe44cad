//! Reading a directory: classifying its entries by name, detecting the
//! layout, and splitting single-file layouts into up and down sections.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::layout::Layout;
use crate::version::compare_versions;
use crate::{checksum, DiscoverError, Migration, SqlFile};

/// What an entry's name says it is, before the layout is known.
#[derive(Debug)]
enum Entry {
    /// `<ver>_<name>.sql`: sqlx, dbmate, drizzle or lull.
    Plain {
        version: String,
        name: String,
        path: PathBuf,
    },
    /// `<ver>_<name>.up.sql` / `.down.sql`: sqlx or golang-migrate.
    UpDown {
        version: String,
        name: String,
        up: bool,
        path: PathBuf,
    },
    /// `V<ver>__<name>.sql` / `U<ver>__<name>.sql`.
    Flyway {
        version: String,
        name: String,
        undo: bool,
        path: PathBuf,
    },
    /// `<ver>_<name>/` holding `up.sql`.
    DieselDir {
        version: String,
        name: String,
        path: PathBuf,
    },
    /// `<ver>_<name>/` holding `migration.sql`.
    PrismaDir {
        version: String,
        name: String,
        path: PathBuf,
    },
}

/// The coarse family an entry belongs to; two families in one directory is
/// a mixed layout (except plain + up/down, which sqlx allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Plain,
    UpDown,
    Flyway,
    Diesel,
    Prisma,
}

impl Entry {
    fn family(&self) -> Family {
        match self {
            Entry::Plain { .. } => Family::Plain,
            Entry::UpDown { .. } => Family::UpDown,
            Entry::Flyway { .. } => Family::Flyway,
            Entry::DieselDir { .. } => Family::Diesel,
            Entry::PrismaDir { .. } => Family::Prisma,
        }
    }

    fn path(&self) -> &Path {
        match self {
            Entry::Plain { path, .. }
            | Entry::UpDown { path, .. }
            | Entry::Flyway { path, .. }
            | Entry::DieselDir { path, .. }
            | Entry::PrismaDir { path, .. } => path,
        }
    }
}

pub(crate) fn discover(
    dir: &Path,
    forced: Option<Layout>,
) -> Result<Vec<Migration>, DiscoverError> {
    if !dir.is_dir() {
        return Err(DiscoverError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut names = Vec::new();
    let read = fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for item in read {
        let item = item.map_err(|e| io(dir, e))?;
        names.push(item.path());
    }
    names.sort();

    let mut entries = Vec::new();
    let mut drizzle_journal = false;
    for path in names {
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if is_ignored(&file_name) {
            continue;
        }
        if path.is_dir() {
            if file_name == "meta" {
                drizzle_journal |= path.join("_journal.json").is_file();
                continue;
            }
            entries.push(classify_dir(&path, &file_name)?);
        } else {
            entries.push(classify_file(&path, &file_name)?);
        }
    }
    if entries.is_empty() {
        return Ok(Vec::new());
    }

    // Plain files are read now: their content decides between sqlx,
    // dbmate, drizzle and lull.
    let mut plain_texts: BTreeMap<PathBuf, String> = BTreeMap::new();
    for e in &entries {
        if let Entry::Plain { path, .. } = e {
            plain_texts.insert(path.clone(), read_text(path)?);
        }
    }
    let layout = match forced {
        Some(layout) => {
            check_fits(&entries, layout)?;
            layout
        }
        None => detect(&entries, &plain_texts, drizzle_journal)?,
    };

    let mut migrations = match layout {
        Layout::Sqlx | Layout::GolangMigrate => build_updown(&entries, &plain_texts, layout)?,
        Layout::Dbmate => build_plain(&entries, &plain_texts, layout, split_dbmate)?,
        Layout::Lull => build_plain(&entries, &plain_texts, layout, split_lull)?,
        Layout::Drizzle => build_plain(&entries, &plain_texts, layout, whole_file)?,
        Layout::Flyway => build_flyway(&entries)?,
        Layout::Diesel => build_diesel(&entries)?,
        Layout::Prisma => build_prisma(&entries)?,
    };
    migrations.sort_by(|a, b| compare_versions(&a.version, &b.version));
    for pair in migrations.windows(2) {
        if compare_versions(&pair[0].version, &pair[1].version).is_eq() {
            return Err(DiscoverError::DuplicateVersion {
                version: pair[1].version.clone(),
                first: source_path(&pair[0]),
                second: source_path(&pair[1]),
            });
        }
    }
    Ok(migrations)
}

fn source_path(m: &Migration) -> PathBuf {
    m.up.as_ref()
        .or(m.down.as_ref())
        .map(|f| f.path.clone())
        .unwrap_or_default()
}

fn io(path: &Path, source: std::io::Error) -> DiscoverError {
    DiscoverError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Files that live beside migrations without being migrations.
fn is_ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || lower.starts_with("readme")
        || lower.ends_with(".md")
        || lower == "migration_lock.toml"
        || lower == "lull.toml"
}

fn read_text(path: &Path) -> Result<String, DiscoverError> {
    let bytes = fs::read(path).map_err(|e| io(path, e))?;
    let mut text = String::from_utf8(bytes).map_err(|_| DiscoverError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Splits `<digits>_<name>` (the version may also hold `-`, as diesel's
/// `2023-01-02-030405` does, when `dashes` is set).
fn split_version(stem: &str, dashes: bool) -> Option<(String, String)> {
    let end = stem
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || (dashes && *c == '-')))
        .map(|(i, _)| i)
        .unwrap_or(stem.len());
    let version = &stem[..end];
    if version.is_empty() || !version.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let rest = &stem[end..];
    let name = rest.strip_prefix('_')?;
    Some((version.to_string(), name.to_string()))
}

fn unknown(path: &Path, expected: String) -> DiscoverError {
    DiscoverError::UnknownFile {
        path: path.to_path_buf(),
        expected,
    }
}

fn classify_file(path: &Path, file_name: &str) -> Result<Entry, DiscoverError> {
    let expected = || Layout::all_patterns();
    let Some(stem) = file_name.strip_suffix(".sql") else {
        return Err(unknown(path, expected()));
    };
    let path = path.to_path_buf();
    if let Some(rest) = stem.strip_prefix('V').or_else(|| stem.strip_prefix('U')) {
        let undo = stem.starts_with('U');
        let (version, name) = rest
            .split_once("__")
            .filter(|(v, _)| {
                !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_digit() || c == '_' || c == '.')
            })
            .ok_or_else(|| unknown(&path, expected()))?;
        let version = version.replace('_', ".");
        return Ok(Entry::Flyway {
            version,
            name: name.to_string(),
            undo,
            path,
        });
    }
    if stem.starts_with("R__") {
        return Err(DiscoverError::Malformed {
            path,
            reason: "Flyway repeatable migrations (R__) are not supported; \
                     turn it into a versioned V<version>__<name>.sql migration"
                .into(),
        });
    }
    for (suffix, up) in [(".up", true), (".down", false)] {
        if let Some(base) = stem.strip_suffix(suffix) {
            let (version, name) =
                split_version(base, false).ok_or_else(|| unknown(&path, expected()))?;
            return Ok(Entry::UpDown {
                version,
                name,
                up,
                path,
            });
        }
    }
    let (version, name) = split_version(stem, false).ok_or_else(|| unknown(&path, expected()))?;
    Ok(Entry::Plain {
        version,
        name,
        path,
    })
}

fn classify_dir(path: &Path, dir_name: &str) -> Result<Entry, DiscoverError> {
    let expected = || {
        format!(
            "a migration directory {} or {}",
            Layout::Diesel.pattern(),
            Layout::Prisma.pattern()
        )
    };
    let (version, name) = split_version(dir_name, true).ok_or_else(|| unknown(path, expected()))?;
    let path = path.to_path_buf();
    if path.join("migration.sql").is_file() {
        Ok(Entry::PrismaDir {
            version,
            name,
            path,
        })
    } else if path.join("up.sql").is_file() {
        // diesel records the version without its dashes.
        Ok(Entry::DieselDir {
            version: version.replace('-', ""),
            name,
            path,
        })
    } else {
        Err(unknown(&path, expected()))
    }
}

fn has_line(text: &str, pred: impl Fn(&str) -> bool) -> bool {
    text.lines().any(|l| pred(l.trim()))
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

fn is_dbmate_up(line: &str) -> bool {
    line.starts_with("-- migrate:up")
}

fn is_lull_down(line: &str) -> bool {
    line.eq_ignore_ascii_case("-- lull:down")
}

fn is_lull_no_tx(line: &str) -> bool {
    line.eq_ignore_ascii_case("-- lull:no-transaction")
}

/// The layout a plain `<ver>_<name>.sql` file's content points to, if it
/// says anything.
fn plain_hint(text: &str) -> Option<Layout> {
    if has_line(text, is_dbmate_up) {
        Some(Layout::Dbmate)
    } else if has_line(text, is_lull_down) || is_lull_no_tx(first_line(text)) {
        Some(Layout::Lull)
    } else if text.contains("--> statement-breakpoint") {
        Some(Layout::Drizzle)
    } else if first_line(text) == "-- no-transaction" {
        Some(Layout::Sqlx)
    } else {
        None
    }
}

fn detect(
    entries: &[Entry],
    plain_texts: &BTreeMap<PathBuf, String>,
    drizzle_journal: bool,
) -> Result<Layout, DiscoverError> {
    // The first entry of each family, to name in a mixed-layout message.
    let mut families: BTreeMap<Family, &Entry> = BTreeMap::new();
    for e in entries {
        families.entry(e.family()).or_insert(e);
    }

    // Plain files: every hint must agree.
    let mut plain: Option<(Layout, &Path)> = None;
    for (path, text) in plain_texts {
        if let Some(hint) = plain_hint(text) {
            match plain {
                Some((layout, first)) if layout != hint => {
                    return Err(DiscoverError::MixedLayouts {
                        first: first.to_path_buf(),
                        first_layout: layout,
                        second: path.clone(),
                        second_layout: hint,
                    })
                }
                Some(_) => {}
                None => plain = Some((hint, path)),
            }
        }
    }
    let plain_layout = match plain.map(|(l, _)| l) {
        Some(l) => l,
        None if drizzle_journal => Layout::Drizzle,
        None => Layout::Sqlx,
    };
    let updown_layout = if entries.iter().any(|e| match e {
        Entry::UpDown { up: true, path, .. } => fs::read_to_string(path)
            .map(|t| first_line(&t) == "-- no-transaction")
            .unwrap_or(false),
        _ => false,
    }) {
        Layout::Sqlx
    } else {
        Layout::GolangMigrate
    };
    let layout_of = |f: Family| match f {
        Family::Plain => plain_layout,
        Family::UpDown => updown_layout,
        Family::Flyway => Layout::Flyway,
        Family::Diesel => Layout::Diesel,
        Family::Prisma => Layout::Prisma,
    };

    let fams: Vec<Family> = families.keys().copied().collect();
    match fams.as_slice() {
        [one] => Ok(layout_of(*one)),
        // sqlx reads simple and reversible files side by side.
        [Family::Plain, Family::UpDown] if plain_layout == Layout::Sqlx => Ok(Layout::Sqlx),
        _ => {
            let (a, b) = (fams[0], fams[1]);
            let (la, lb) = (layout_of(a), layout_of(b));
            Err(DiscoverError::MixedLayouts {
                first: families[&a].path().to_path_buf(),
                first_layout: la,
                second: families[&b].path().to_path_buf(),
                second_layout: lb,
            })
        }
    }
}

/// With a layout given by the user, every entry must be of its family.
fn check_fits(entries: &[Entry], layout: Layout) -> Result<(), DiscoverError> {
    for e in entries {
        let ok = match layout {
            Layout::Sqlx => matches!(e.family(), Family::Plain | Family::UpDown),
            Layout::GolangMigrate => e.family() == Family::UpDown,
            Layout::Dbmate | Layout::Drizzle | Layout::Lull => e.family() == Family::Plain,
            Layout::Flyway => e.family() == Family::Flyway,
            Layout::Diesel => e.family() == Family::Diesel,
            Layout::Prisma => e.family() == Family::Prisma,
        };
        if !ok {
            return Err(unknown(
                e.path(),
                format!("{} ({layout})", layout.pattern()),
            ));
        }
    }
    Ok(())
}

/// One direction's SQL cut out of a file: the text and its line offset.
type Section = (String, usize);

/// The up and down sections of a single-file migration, and whether it
/// asks for no transaction.
struct Split {
    up: Section,
    down: Option<Section>,
    no_transaction: bool,
}

fn whole_file(text: &str, _path: &Path) -> Result<Split, DiscoverError> {
    Ok(Split {
        up: (text.to_string(), 0),
        down: None,
        no_transaction: false,
    })
}

/// Byte offset of the start of each line, and the line's text.
fn lines_with_offsets(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        out.push((start, line));
        start += line.len();
    }
    out
}

fn split_lull(text: &str, _path: &Path) -> Result<Split, DiscoverError> {
    let no_transaction = is_lull_no_tx(first_line(text));
    let lines = lines_with_offsets(text);
    match lines.iter().position(|(_, l)| is_lull_down(l.trim())) {
        None => Ok(Split {
            up: (text.to_string(), 0),
            down: None,
            no_transaction,
        }),
        Some(i) => {
            let (marker_at, marker) = lines[i];
            let down_at = marker_at + marker.len();
            Ok(Split {
                up: (text[..marker_at].to_string(), 0),
                down: Some((text[down_at..].to_string(), i + 1)),
                no_transaction,
            })
        }
    }
}

fn split_dbmate(text: &str, path: &Path) -> Result<Split, DiscoverError> {
    let lines = lines_with_offsets(text);
    let up = lines.iter().position(|(_, l)| is_dbmate_up(l.trim()));
    let down = lines
        .iter()
        .position(|(_, l)| l.trim().starts_with("-- migrate:down"));
    let Some(up) = up else {
        return Err(DiscoverError::Malformed {
            path: path.to_path_buf(),
            reason: "a dbmate migration needs a `-- migrate:up` line before its SQL".into(),
        });
    };
    // A section runs from the line after its marker to the other marker
    // (if that comes later) or the end of the file.
    let section = |marker: usize, other: Option<usize>| -> Section {
        let start = lines[marker].0 + lines[marker].1.len();
        let end = match other {
            Some(o) if o > marker => lines[o].0,
            _ => text.len(),
        };
        (text[start..end].to_string(), marker + 1)
    };
    let no_transaction = lines[up]
        .1
        .split_whitespace()
        .any(|w| w == "transaction:false");
    let up_section = section(up, down);
    // dbmate writes an empty down section by default: that is "no down".
    let down_section = down
        .map(|d| section(d, Some(up)))
        .filter(|(sql, _)| !sql.trim().is_empty());
    Ok(Split {
        up: up_section,
        down: down_section,
        no_transaction,
    })
}

fn build_plain(
    entries: &[Entry],
    texts: &BTreeMap<PathBuf, String>,
    layout: Layout,
    split: fn(&str, &Path) -> Result<Split, DiscoverError>,
) -> Result<Vec<Migration>, DiscoverError> {
    let mut out = Vec::new();
    for e in entries {
        let Entry::Plain {
            version,
            name,
            path,
        } = e
        else {
            continue;
        };
        let text = &texts[path];
        let s = split(text, path)?;
        let sql_file = |(sql, line_offset): Section| SqlFile {
            path: path.clone(),
            sql,
            line_offset,
        };
        out.push(Migration {
            version: version.clone(),
            name: name.clone(),
            checksum: checksum(&s.up.0),
            up: Some(sql_file(s.up)),
            down: s.down.map(sql_file),
            layout,
            no_transaction: s.no_transaction,
        });
    }
    Ok(out)
}

fn build_updown(
    entries: &[Entry],
    texts: &BTreeMap<PathBuf, String>,
    layout: Layout,
) -> Result<Vec<Migration>, DiscoverError> {
    // Keyed by version; duplicates of the same direction are an error here
    // because the later sort-and-compare only sees one migration.
    let mut by_version: BTreeMap<String, (String, Option<SqlFile>, Option<SqlFile>)> =
        BTreeMap::new();
    for e in entries {
        match e {
            Entry::Plain {
                version,
                name,
                path,
            } => {
                let slot = by_version
                    .entry(version.clone())
                    .or_insert((name.clone(), None, None));
                if let Some(prev) = &slot.1 {
                    return Err(DiscoverError::DuplicateVersion {
                        version: version.clone(),
                        first: prev.path.clone(),
                        second: path.clone(),
                    });
                }
                slot.1 = Some(SqlFile {
                    path: path.clone(),
                    sql: texts[path].clone(),
                    line_offset: 0,
                });
            }
            Entry::UpDown {
                version,
                name,
                up,
                path,
            } => {
                let sql = read_text(path)?;
                let slot = by_version
                    .entry(version.clone())
                    .or_insert((name.clone(), None, None));
                let target = if *up { &mut slot.1 } else { &mut slot.2 };
                if let Some(prev) = target {
                    return Err(DiscoverError::DuplicateVersion {
                        version: version.clone(),
                        first: prev.path.clone(),
                        second: path.clone(),
                    });
                }
                if *up {
                    slot.0 = name.clone();
                }
                *target = Some(SqlFile {
                    path: path.clone(),
                    sql,
                    line_offset: 0,
                });
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (version, (name, up, down)) in by_version {
        let Some(up) = up else {
            let path = down.map(|d| d.path).unwrap_or_default();
            return Err(DiscoverError::Malformed {
                path,
                reason: format!("version {version} has a down file but no up file"),
            });
        };
        let no_transaction = layout == Layout::Sqlx && first_line(&up.sql) == "-- no-transaction";
        out.push(Migration {
            version,
            name,
            checksum: checksum(&up.sql),
            up: Some(up),
            down,
            layout,
            no_transaction,
        });
    }
    Ok(out)
}

fn build_flyway(entries: &[Entry]) -> Result<Vec<Migration>, DiscoverError> {
    let mut ups: Vec<(String, String, SqlFile)> = Vec::new();
    let mut undos: Vec<(String, SqlFile)> = Vec::new();
    for e in entries {
        if let Entry::Flyway {
            version,
            name,
            undo,
            path,
        } = e
        {
            let file = SqlFile {
                path: path.clone(),
                sql: read_text(path)?,
                line_offset: 0,
            };
            if *undo {
                undos.push((version.clone(), file));
            } else {
                ups.push((version.clone(), name.clone(), file));
            }
        }
    }
    let mut out = Vec::new();
    for (version, name, up) in ups {
        let down = undos
            .iter()
            .position(|(v, _)| compare_versions(v, &version).is_eq())
            .map(|i| undos.remove(i).1);
        out.push(Migration {
            checksum: checksum(&up.sql),
            version,
            name,
            up: Some(up),
            down,
            layout: Layout::Flyway,
            no_transaction: false,
        });
    }
    if let Some((version, file)) = undos.into_iter().next() {
        return Err(DiscoverError::Malformed {
            path: file.path,
            reason: format!("undo migration for version {version} has no V{version}__ migration"),
        });
    }
    Ok(out)
}

fn build_diesel(entries: &[Entry]) -> Result<Vec<Migration>, DiscoverError> {
    let mut out = Vec::new();
    for e in entries {
        let Entry::DieselDir {
            version,
            name,
            path,
        } = e
        else {
            continue;
        };
        let up_path = path.join("up.sql");
        let down_path = path.join("down.sql");
        let up = SqlFile {
            sql: read_text(&up_path)?,
            path: up_path,
            line_offset: 0,
        };
        let down = if down_path.is_file() {
            Some(SqlFile {
                sql: read_text(&down_path)?,
                path: down_path,
                line_offset: 0,
            })
        } else {
            None
        };
        let meta = path.join("metadata.toml");
        let no_transaction = if meta.is_file() {
            read_text(&meta)?.lines().any(|l| {
                l.split('#').next().unwrap_or("").replace(' ', "") == "run_in_transaction=false"
            })
        } else {
            false
        };
        out.push(Migration {
            version: version.clone(),
            name: name.clone(),
            checksum: checksum(&up.sql),
            up: Some(up),
            down,
            layout: Layout::Diesel,
            no_transaction,
        });
    }
    Ok(out)
}

fn build_prisma(entries: &[Entry]) -> Result<Vec<Migration>, DiscoverError> {
    let mut out = Vec::new();
    for e in entries {
        let Entry::PrismaDir {
            version,
            name,
            path,
        } = e
        else {
            continue;
        };
        let up_path = path.join("migration.sql");
        let up = SqlFile {
            sql: read_text(&up_path)?,
            path: up_path,
            line_offset: 0,
        };
        // Prisma's documented way down: a `down.sql` written beside
        // `migration.sql` (by `prisma migrate diff`), run by hand.
        let down_path = path.join("down.sql");
        let down = if down_path.is_file() {
            Some(SqlFile {
                sql: read_text(&down_path)?,
                path: down_path,
                line_offset: 0,
            })
        } else {
            None
        };
        out.push(Migration {
            version: version.clone(),
            name: name.clone(),
            checksum: checksum(&up.sql),
            up: Some(up),
            down,
            layout: Layout::Prisma,
            no_transaction: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
