use std::sync::Arc;
use lull_engine::*;

#[tokio::test(flavor = "multi_thread")]
async fn smoke() {
    let admin = lull_engine::db::connect("postgres://postgres@127.0.0.1:55432/postgres", "t").await.unwrap();
    admin.batch_execute("drop database if exists smoke with (force)").await.unwrap(); admin.batch_execute("create database smoke").await.unwrap();
    let url = "postgres://postgres@127.0.0.1:55432/smoke";
    let ms = lull_migrations::discover(std::path::Path::new("/tmp/smoke/m")).unwrap();
    let sink: EventSink = Arc::new(|e: &Event| println!("{}", serde_json::to_string(e).unwrap()));
    let r = Runner::new(RunnerOptions::new(url)).with_events(sink);
    for m in &ms { println!("{:#?}", r.plan(m, Direction::Up).unwrap().steps.iter().map(|s| (s.kind, s.policy, s.sql())).collect::<Vec<_>>()); }
    let s = r.migrate(&ms, None).await.unwrap();
    println!("{s:?}");
    println!("{}", serde_json::to_string_pretty(&r.status(&ms).await.unwrap()).unwrap());
    let s = r.rollback(&ms, RollbackTarget::Steps(2)).await.unwrap();
    println!("{s:?}");
    println!("{}", serde_json::to_string(&r.status(&ms).await.unwrap()).unwrap());
}
