//! Makes one `TestDb`, prints its URL, waits for a line on stdin, then
//! drops it: lets a test watch where the harness puts databases.

fn main() {
    let db = lull_sandbox::testing::TestDb::new();
    println!("{}", db.url());
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(db);
}
