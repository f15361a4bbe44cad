//! Lint throughput on a generated corpus of migration files.
//!
//! ```text
//! cargo bench -p lull --bench lint                # 5,000 files
//! LULL_BENCH_FILES=20000 cargo bench -p lull --bench lint
//! SQUAWK=/path/to/squawk cargo bench -p lull --bench lint
//! ```
//!
//! Generates a deterministic corpus of sqlx-style migrations (a mix of
//! CREATE TABLE, ADD COLUMN, indexes, constraints, backfills, renames,
//! comments and explicit transactions, 1 to 12 statements per file) under
//! `target/lint-bench-corpus`, then times, best of three runs:
//!
//! - the analyzer in-process (`lull_analyzer::lint` over every file);
//! - the `lull lint` binary on the directory, as CI would run it;
//! - `squawk` on the same files, when it is found (`SQUAWK`, else `squawk`
//!   on PATH), with the ratio of the two command lines.
//!
//! and prints files/s and statements/s as a table. Not part of
//! `cargo test`; timings on a shared machine vary, so read the ratio
//! rather than the absolute numbers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lull_analyzer::{lint, parse, LintOptions, SourceFile};

/// A small deterministic generator (SplitMix64), so the corpus is the same
/// on every machine and run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const TABLES: &[&str] = &[
    "users", "orders", "invoices", "payments", "events", "accounts", "sessions", "products",
];
const COLUMNS: &[&str] = &[
    "user_id",
    "status",
    "created_at",
    "amount",
    "email",
    "note",
    "ref",
    "kind",
];
const TYPES: &[&str] = &[
    "int",
    "bigint",
    "text",
    "varchar(64)",
    "timestamptz",
    "jsonb",
    "boolean",
];

/// One statement of the corpus.
fn statement(rng: &mut Rng, file: usize, n: usize) -> String {
    let t = rng.pick(TABLES);
    let c = rng.pick(COLUMNS);
    let ty = rng.pick(TYPES);
    match rng.below(14) {
        0 => format!(
            "CREATE TABLE IF NOT EXISTS {t}_{file}_{n} (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    {c} {ty},\n    created_at timestamptz NOT NULL DEFAULT now()\n)"
        ),
        1 => format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {c}_{n} {ty}"),
        2 => format!("CREATE INDEX CONCURRENTLY IF NOT EXISTS {t}_{c}_{file}_{n}_idx ON {t} ({c})"),
        3 => format!("CREATE INDEX {t}_{c}_{file}_{n}_idx ON {t} ({c}, created_at)"),
        4 => format!(
            "ALTER TABLE {t} ADD CONSTRAINT {t}_{c}_{file}_fk FOREIGN KEY ({c}) REFERENCES users (id)"
        ),
        5 => format!(
            "ALTER TABLE {t} ADD CONSTRAINT {t}_{c}_{file}_check CHECK ({c} IS NOT NULL) NOT VALID"
        ),
        6 => format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"),
        7 => format!("UPDATE {t} SET {c} = DEFAULT WHERE {c} IS NULL AND id < {}", rng.below(100_000)),
        8 => format!("ALTER TABLE {t} RENAME COLUMN {c} TO {c}_old"),
        9 => format!("DROP INDEX IF EXISTS {t}_{c}_{file}_idx"),
        10 => format!("ALTER TABLE {t} ALTER COLUMN {c} TYPE {ty} USING {c}::{ty}"),
        11 => format!("INSERT INTO {t} ({c}) SELECT {c} FROM {t}_staging WHERE id > {}", rng.below(1000)),
        12 => format!("COMMENT ON COLUMN {t}.{c} IS 'migration {file}'"),
        _ => format!(
            "SELECT count(*) FROM {t} t JOIN users u ON u.id = t.user_id WHERE t.created_at > now() - interval '{} days'",
            rng.below(30) + 1
        ),
    }
}

/// The text of migration `file`.
fn migration(rng: &mut Rng, file: usize) -> String {
    let count = 1 + rng.below(12) as usize;
    let mut out = format!("-- migration {file}: generated for the lint benchmark\n");
    let block = rng.below(5) == 0;
    if block {
        out.push_str("BEGIN;\n");
    }
    for n in 0..count {
        if rng.below(4) == 0 {
            out.push_str("-- why this step is needed\n");
        }
        out.push_str(&statement(rng, file, n));
        out.push_str(";\n");
    }
    if block {
        out.push_str("COMMIT;\n");
    }
    out
}

/// Writes the corpus (replacing an older one) and returns its files.
fn corpus(dir: &Path, files: usize) -> Vec<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create the corpus directory");
    let mut rng = Rng(0x6c75_6c6c);
    (0..files)
        .map(|i| {
            let path = dir.join(format!("{:014}_m{i}.sql", 20_240_101_000_000u64 + i as u64));
            std::fs::write(&path, migration(&mut rng, i)).expect("write a corpus file");
            path
        })
        .collect()
}

/// The fastest of three runs of `f`.
fn best_of_3(mut f: impl FnMut()) -> Duration {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .expect("three runs")
}

fn run_quietly(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.code().is_some())
        .unwrap_or(false)
}

fn row(name: &str, files: usize, statements: usize, took: Duration) {
    let secs = took.as_secs_f64();
    println!(
        "| {name:<28} | {files:>6} | {statements:>10} | {secs:>8.3} | {:>9.0} | {:>12.0} |",
        files as f64 / secs,
        statements as f64 / secs
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument means another bench
    // was asked for.
    if std::env::args().skip(1).any(|a| !a.starts_with("--")) {
        return;
    }
    let count: usize = std::env::var("LULL_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let dir = target.join("lint-bench-corpus");
    let paths = corpus(&dir, count);
    let dir = dir.canonicalize().unwrap_or(dir);
    let sources: Vec<SourceFile> = paths
        .iter()
        .map(|p| SourceFile {
            path: p.display().to_string(),
            sql: std::fs::read_to_string(p).expect("read a corpus file"),
            ..SourceFile::default()
        })
        .collect();
    let statements: usize = sources
        .iter()
        .map(|s| parse(&s.sql).map(|v| v.len()).unwrap_or(0))
        .sum();
    let bytes: usize = sources.iter().map(|s| s.sql.len()).sum();
    println!(
        "corpus: {count} files, {statements} statements, {:.1} MiB in {}",
        bytes as f64 / (1 << 20) as f64,
        dir.display()
    );
    println!();
    println!(
        "| {:<28} | {:>6} | {:>10} | {:>8} | {:>9} | {:>12} |",
        "run", "files", "statements", "seconds", "files/s", "statements/s"
    );
    println!(
        "|{:-<30}|{:->8}|{:->12}|{:->10}|{:->11}|{:->14}|",
        "", "", "", "", "", ""
    );

    let opts = LintOptions::default();
    let mut findings = 0;
    let library = best_of_3(|| findings = lint(&sources, &opts).findings.len());
    row("lull analyzer (in-process)", count, statements, library);

    let lull = env!("CARGO_BIN_EXE_lull");
    let cli = best_of_3(|| {
        let ok = run_quietly(
            Command::new(lull)
                .args([
                    "lint",
                    "--offline",
                    "--fail-on",
                    "never",
                    "--format",
                    "json",
                ])
                .arg(&dir)
                .env_remove("DATABASE_URL"),
        );
        assert!(ok, "lull lint did not run");
    });
    row("lull lint (CLI)", count, statements, cli);

    let squawk = std::env::var("SQUAWK").unwrap_or_else(|_| "squawk".into());
    let has_squawk = Command::new(&squawk)
        .arg("--version")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match has_squawk {
        Some(version) => {
            let took = best_of_3(|| {
                let ok = run_quietly(Command::new(&squawk).args(&paths));
                assert!(ok, "squawk did not run");
            });
            row(&version, count, statements, took);
            println!();
            println!(
                "lull lint / squawk throughput ratio: {:.2}x",
                took.as_secs_f64() / cli.as_secs_f64()
            );
        }
        None => {
            println!();
            println!(
                "squawk not found (set SQUAWK=/path/to/squawk); install with \
                 `cargo install squawk --version 2.68.0 --locked` to compare"
            );
        }
    }
    println!("findings reported by the analyzer: {findings}");
}
