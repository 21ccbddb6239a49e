#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_control_socket_answers_is_private_and_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let socket = ControlSocket::start(dir.path(), Arc::new(|req: &str| format!("you asked {req:?}"))).unwrap();
    let mode = std::fs::metadata(dir.path().join(CONTROL_SOCKET))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let d = dir.path().to_owned();
    let answer = tokio::task::spawn_blocking(move || ask(&d, "status --json"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer, "you asked \"status --json\"");
    drop(socket);
    assert!(ask(dir.path(), "status").is_none());
}

#[test]
fn sd_notify_sends_the_state_to_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&path).unwrap();
    send_notify(path.as_os_str(), "READY=1").unwrap();
    let mut buf = [0u8; 64];
    let n = systemd.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
}
