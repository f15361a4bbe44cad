//! `lull demo` as a new user runs it, with small settings: the table has
//! its rows and columns, the naive run and the guides' recipe stall writes
//! for most of the read transaction's life, and the lull run stalls none
//! over a second.
//!
//! Behaviour, not speed: the margins are wide (a 3 s read transaction
//! against a 1 s bound), so a loaded two-core machine does not make it
//! flaky.

use std::time::Duration;

use assert_cmd::Command;

/// A latency as the table prints it (`312 ms`, `2.98 s`).
fn parse_latency(value: &str, unit: &str) -> Duration {
    let n: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {value}"));
    match unit {
        "ms" => Duration::from_secs_f64(n / 1000.0),
        "s" => Duration::from_secs_f64(n),
        other => panic!("unknown unit {other}"),
    }
}

/// The cells (naive, recipe, lull) of a row of the side-by-side table.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with("  "))
        })
        .unwrap_or_else(|| panic!("no row `{name}` in:\n{table}"));
    line[name.len()..].split_whitespace().collect()
}

fn latencies(table: &str, name: &str) -> (Duration, Duration, Duration) {
    let cells = row(table, name);
    assert_eq!(cells.len(), 6, "row `{name}`: {cells:?}");
    (
        parse_latency(cells[0], cells[1]),
        parse_latency(cells[2], cells[3]),
        parse_latency(cells[4], cells[5]),
    )
}

fn counts(table: &str, name: &str) -> (u64, u64, u64) {
    let cells = row(table, name);
    assert_eq!(cells.len(), 3, "row `{name}`: {cells:?}");
    let n = |s: &str| s.replace(',', "").parse::<u64>().unwrap();
    (n(cells[0]), n(cells[1]), n(cells[2]))
}

#[test]
fn demo_shows_naive_stalls_and_lull_keeps_writes_flowing() {
    let scratch = tempfile::tempdir().unwrap();
    let plot = scratch.path().join("demo.svg");
    let out = Command::cargo_bin("lull")
        .unwrap()
        .args(["demo", "--rows", "50000", "--blocker", "3s", "--plot"])
        .arg(&plot)
        .env_remove("DATABASE_URL")
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    // Progress says what it is doing while it runs.
    for phase in [
        "starting a throwaway PostgreSQL",
        "loading 50,000 rows",
        "naive run:",
        "recipe run:",
        "lull run:",
        "a long read transaction opens on orders",
        "waiting for a gap, not in the lock queue, behind pid",
    ] {
        assert!(stderr.contains(phase), "no `{phase}` in:\n{stderr}");
    }

    // The stall is visible while it happens, in the naive run only.
    assert!(stderr.contains("naive     writes stalled:"), "{stderr}");
    assert!(!stderr.contains("lull      writes stalled:"), "{stderr}");

    // The table's shape: a header and five rows with naive, recipe and
    // lull cells.
    let header = stdout
        .lines()
        .find(|l| l.split_whitespace().collect::<Vec<_>>() == ["naive", "recipe", "lull"])
        .unwrap_or_else(|| panic!("no naive/recipe/lull header in:\n{stdout}"));
    assert!(header.find("naive") < header.find("recipe"));
    let (naive_worst, recipe_worst, lull_worst) = latencies(&stdout, "worst write");
    let (naive_p99, recipe_p99, lull_p99) = latencies(&stdout, "p99 write");
    let (naive_over, recipe_over, lull_over) = counts(&stdout, "writes over 1 s");
    let (naive_writes, recipe_writes, lull_writes) = counts(&stdout, "writes");
    let finish = row(&stdout, "finish time");
    assert_eq!(finish.len(), 6, "{finish:?}");
    assert!(naive_p99 <= naive_worst && recipe_p99 <= recipe_worst && lull_p99 <= lull_worst);

    // Every run wrote all along (200/s for several seconds each).
    assert!(
        naive_writes > 500 && recipe_writes > 500 && lull_writes > 500,
        "{stdout}"
    );
    // The recipe's 5 s try queues behind the 3 s read transaction, and the
    // writes queue behind it.
    assert!(
        recipe_worst >= Duration::from_millis(1800) && recipe_over > 0,
        "recipe worst {recipe_worst:?}:\n{stdout}"
    );

    // The naive ALTER queued behind the 3 s read transaction and every
    // write queued behind it: stalled for most of the blocker's life.
    assert!(
        naive_worst >= Duration::from_millis(1800),
        "naive worst {naive_worst:?}:\n{stdout}"
    );
    assert!(naive_over > 0, "{stdout}");
    // lull's ALTER watched from outside the queue: no write over a second.
    assert!(
        lull_worst < Duration::from_secs(1),
        "lull worst {lull_worst:?}:\n{stdout}"
    );
    assert_eq!(lull_over, 0, "{stdout}");

    // The attribution names the step the naive stall came from, and lists
    // lull's safe steps.
    assert!(
        stdout.contains("naive: worst write")
            && stdout
                .lines()
                .any(|l| l.starts_with("naive: worst write") && l.contains("002_add_orders_status")),
        "{stdout}"
    );
    assert!(stdout.contains("queued") && stdout.contains("behind the read transaction"));
    for step in [
        "CREATE INDEX CONCURRENTLY orders_customer_id_idx",
        "NOT VALID",
        "VALIDATE CONSTRAINT orders_customer_id_fkey",
        "from outside the lock queue (writes went on)",
    ] {
        assert!(stdout.contains(step), "no `{step}` in:\n{stdout}");
    }

    // The plot: one panel per run, each titled with its worst write, the
    // steps and the read transaction marked, a dot per write.
    assert!(stderr.contains("plot written to"), "{stderr}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.contains("<svg "),
        "{svg:.200}"
    );
    for label in [
        "naive: worst write",
        "recipe: worst write",
        "lull: worst write",
    ] {
        assert!(svg.contains(label), "no `{label}` in the plot");
    }
    assert!(
        svg.contains("read transaction open"),
        "no blocker band in the plot"
    );
    assert!(svg.contains("002 #1"), "no step marker in the plot");
    assert!(
        svg.matches("<circle").count() > 100,
        "too few write dots in the plot"
    );
}

#[test]
fn demo_plot_to_an_unwritable_path_fails_before_the_demo() {
    let out = Command::cargo_bin("lull")
        .unwrap()
        .args(["demo", "--plot", "/nonexistent-dir/demo.svg"])
        .env_remove("DATABASE_URL")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot write the plot"), "{stderr}");
    assert!(
        !stderr.contains("starting a throwaway PostgreSQL"),
        "{stderr}"
    );
}

#[test]
fn demo_help_explains_the_figures() {
    let out = Command::cargo_bin("lull")
        .unwrap()
        .args(["demo", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for text in [
        "worst write",
        "p99 write",
        "writes over 1 s",
        "finish time",
        "--rows",
        "--blocker",
        "[default: 2000000]",
    ] {
        assert!(help.contains(text), "no `{text}` in:\n{help}");
    }
}
