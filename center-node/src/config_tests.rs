use super::*;

#[test]
fn unknown_keys_and_a_zero_limit_are_named() {
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
    // The old allow-list is gone: the key registry decides who may sign.
    std::fs::write(&init.config_path, format!("{text}\n[[members]]\nname = \"x\"\n")).unwrap();
    let err = CenterConfig::load(&init.config_path).unwrap_err().to_string();
    assert!(err.contains("unknown field `members`"), "{err}");
    std::fs::write(
        &init.config_path,
        text.replace("max_connections = 1024", "max_connections = 0"),
    )
    .unwrap();
    let err = CenterConfig::load(&init.config_path).unwrap_err().to_string();
    assert!(err.contains("max_connections must be positive"), "{err}");
    assert!(crate::provision::init_center(&dir.path().join("c"), "n", "127.0.0.1:0".parse().unwrap(), None).is_err());
}

/// The loader's workstation holds none of the receiver's TLS files: its center.toml loads
/// all the same, and only serving (or `check-config`) asks for them.
#[test]
fn a_config_without_the_receivers_tls_files_loads_but_does_not_serve() {
    let dir = tempfile::tempdir().unwrap();
    let init = crate::provision::init_center(
        &dir.path().join("c"),
        "center.konvert",
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .unwrap();
    let cfg = CenterConfig::load(&init.config_path).unwrap();
    assert!(cfg.check_serving().is_ok());
    std::fs::remove_file(&cfg.key).unwrap();
    std::fs::remove_file(&cfg.cert).unwrap();
    let cfg = CenterConfig::load(&init.config_path).unwrap();
    let err = cfg.check_serving().unwrap_err();
    assert!(err.contains("does not exist") && err.contains("init"), "{err}");
}

/// The free-space floor is the regulations' 5 % unless set, written by `init`, and a
/// value that is no share of a disk is named.
#[test]
fn the_free_space_floor_defaults_to_the_regulations_five_percent_and_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let init = crate::provision::init_center(
        &dir.path().join("c"),
        "center.konvert",
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .unwrap();
    let text = std::fs::read_to_string(&init.config_path).unwrap();
    assert!(text.contains("min_free_percent = 5.0"), "{text}");
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("min_free_percent"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&init.config_path, &without).unwrap();
    assert_eq!(CenterConfig::load(&init.config_path).unwrap().min_free_percent, 5.0);
    for bad in ["100.0", "-1.0", "nan"] {
        std::fs::write(
            &init.config_path,
            text.replace("min_free_percent = 5.0", &format!("min_free_percent = {bad}")),
        )
        .unwrap();
        let err = CenterConfig::load(&init.config_path).unwrap_err().to_string();
        assert!(err.contains("min_free_percent"), "{bad}: {err}");
    }
}
