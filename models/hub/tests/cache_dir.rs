//! `cache_dir` resolves the hub cache folder exactly as hf-hub does, for every combination of the
//! variables both read. Its own test binary, since it sets those variables for the process.
#![cfg(feature = "download")]

const VARS: [&str; 5] = [
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HOME",
    "XDG_CACHE_HOME",
    "HOME",
];

#[test]
fn cache_dir_is_hf_hubs_for_every_setting() {
    for set in 0u32..(1 << VARS.len()) {
        for (i, var) in VARS.iter().enumerate() {
            // SAFETY: this binary's only test; no other thread reads the environment.
            unsafe {
                if set & (1 << i) != 0 {
                    std::env::set_var(var, format!("/tmp/{var}-value"));
                } else {
                    std::env::remove_var(var);
                }
            }
        }
        assert_eq!(
            model_hub::cache_dir(),
            hf_hub::resolve_cache_dir(),
            "variables set: {:?}",
            VARS.iter()
                .enumerate()
                .filter(|(i, _)| set & (1 << i) != 0)
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        );
    }
}
