//! Marks the tests that need the emulators as ignored, with the command that
//! runs them, unless `scripts/test` started the emulators (it sets
//! `KFP_EMULATORS=1`, and `KFP_REAL_KUBE=1` with a real control plane).

fn main() {
    for (var, cfg) in [("KFP_EMULATORS", "kfp_emulators"), ("KFP_REAL_KUBE", "kfp_real_kube")] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var_os(var).is_some_and(|v| v == "1") {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
