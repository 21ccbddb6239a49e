use super::*;

#[test]
fn unknown_keys_and_bad_member_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let init = crate::provision::init_center(
        &dir.path().join("c"),
        "center.konvert",
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .unwrap();
    let text = std::fs::read_to_string(&init.config_path).unwrap();
    CenterConfig::load(&init.config_path).unwrap();
    std::fs::write(&init.config_path, format!("{text}\nlisten_port = 1\n")).unwrap();
    let err = CenterConfig::load(&init.config_path).unwrap_err().to_string();
    assert!(err.contains("unknown field `listen_port`"), "{err}");
    let bad_member = format!(
        "{}\n[[members]]\nname = \"x\"\nkey = \"00\"\n",
        text.replace("members = []", "")
    );
    std::fs::write(&init.config_path, bad_member).unwrap();
    let err = CenterConfig::load(&init.config_path).unwrap_err().to_string();
    assert!(err.contains("member \"x\": key must be 64 hex digits"), "{err}");
    assert!(crate::provision::init_center(&dir.path().join("c"), "n", "127.0.0.1:0".parse().unwrap(), None).is_err());
}
