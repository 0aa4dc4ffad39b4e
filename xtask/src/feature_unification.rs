//! Guards the README's `cargo xtask test`, and CI's wheel build after it, against compiling the
//! dependency graph twice.
//!
//! `cargo xtask …` builds xtask alone and then `cargo xtask test` runs `cargo test --workspace`;
//! cargo resolves each dependency's features from the packages a command selects, so any crate
//! whose features differ between the two commands (and everything above it) is compiled twice.
//! xtask/Cargo.toml lists unused dependencies to make the two resolutions agree; this test says
//! which crates disagree when a new dependency or feature breaks that. The same holds for the
//! Python wheel that CI builds (`maturin build --features workspace-features`).

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::process::Command;

    /// `package vX.Y.Z [features]` lines of `cargo tree`, one per resolved node.
    fn resolved(args: &[&str]) -> BTreeSet<String> {
        let out = Command::new(env!("CARGO"))
            .args(["tree", "--locked", "--prefix", "none", "-f", "{p} [{f}]"])
            .args(args)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "cargo tree {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end_matches(" (*)").trim_end_matches(" (proc-macro)"))
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The crates `build` resolves with features that `cargo test --workspace` never gives them
    /// (but `built_alone`, a package built with features of its own, compiled anyway).
    fn compiled_twice(built_alone: Option<&str>, build: &[&str]) -> Vec<String> {
        let workspace = resolved(&["--workspace", "-e", "normal,build,dev"]);
        resolved(build)
            .difference(&workspace)
            .filter(|l| built_alone.is_none_or(|p| !l.starts_with(&format!("{p} "))))
            .map(|l| format!("  {l}"))
            .collect()
    }

    /// Fails naming the crates `build` (a `cargo tree` selection) compiles a second time.
    fn assert_compiled_once(built_alone: Option<&str>, build: &[&str], what: &str, fix: &str) {
        let twice = compiled_twice(built_alone, build);
        assert!(
            twice.is_empty(),
            "{} crates resolve with other features for {what} than for `cargo test --workspace`, \
             so a fresh machine compiles them (and every crate above them) twice; {fix}:\n{}",
            twice.len(),
            twice.join("\n")
        );
    }

    #[test]
    fn xtask_shares_every_compiled_crate_with_the_workspace_build() {
        // `cargo run -p xtask` builds normal and build dependencies; `cargo test --workspace`
        // resolves every member with its dev-dependencies and default features.
        assert_compiled_once(
            Some("xtask"),
            &["-p", "xtask", "-e", "normal,build"],
            "`cargo xtask`",
            "add the dependency that turns the missing features on to xtask/Cargo.toml",
        );
    }

    #[test]
    fn fit_binary_for_xtask_shares_every_compiled_crate_with_the_workspace_build() {
        // build_fit("flex"): `cargo build --release --workspace --bins` (no dev-dependencies).
        assert_compiled_once(
            None,
            &["--workspace", "-e", "normal,build"],
            "xtask's `fit` build (report-check, demo, benchmarks)",
            "a dev-dependency turns them on: make it a normal dependency of some member, or \
             change build_fit",
        );
    }

    #[test]
    fn ci_wheel_shares_every_compiled_crate_with_the_workspace_build() {
        let build = [
            "-p",
            "sparsefit-python",
            "--features",
            "workspace-features",
            "-e",
            "normal,build",
        ];
        assert_compiled_once(
            Some("sparsefit-python"),
            &build,
            "CI's wheel (`--features workspace-features`)",
            "add the dependency that turns the missing features on to crates/python/Cargo.toml's \
             workspace-features",
        );
    }
}
