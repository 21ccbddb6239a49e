#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use std::sync::Arc;
use std::time::Duration;

/// The intake's own work on the folder — listing it, reading a file in it — wakes
/// nothing; writing a file does.
#[tokio::test]
async fn reading_the_folder_does_not_wake_the_intake_and_writing_a_file_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.tif"), b"scan").unwrap();
    let wake = Arc::new(Notify::new());
    let _watch = HotFolderWatch::start(dir.path(), wake.clone()).unwrap();
    for _ in 0..20 {
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let _ = e.unwrap().metadata().unwrap();
        }
        let _ = std::fs::read(dir.path().join("a.tif")).unwrap();
    }
    let woken = tokio::time::timeout(Duration::from_millis(500), wake.notified()).await;
    assert!(woken.is_err(), "listing and reading the hot folder woke the intake");
    std::fs::write(dir.path().join("b.tif"), b"scan").unwrap();
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("a new file in the hot folder did not wake the intake");
}
