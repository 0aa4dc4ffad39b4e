//! Acceptance: asking for wgpu where no adapter can be found is one readable line that names
//! what was missing. The test runs itself again in a child process that sees no Vulkan driver
//! (an ICD list naming a file that does not exist), since a device is opened once per process.
#![cfg(feature = "wgpu")]

use std::process::Command;

use backend::{BackendError, BackendKind};

const CHILD: &str = "BACKEND_NO_ADAPTER_CHILD";

#[test]
fn wgpu_without_an_adapter_is_one_line() {
    if std::env::var_os(CHILD).is_some() {
        match BackendKind::Wgpu.device() {
            Ok(d) => println!("OPENED {}", BackendKind::Wgpu.describe(&d)),
            Err(e @ BackendError::NoDevice { .. }) => println!("NODEVICE {e}"),
            Err(e) => println!("OTHER {e}"),
        }
        return;
    }
    let none = std::env::temp_dir().join("no-such-vulkan-icd.json");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "wgpu_without_an_adapter_is_one_line",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        // The Vulkan loader's driver list (old and new names) and glvnd's EGL vendor list (wgpu's
        // GL fallback finds mesa's llvmpipe through EGL), both naming a file that does not exist.
        .env("VK_ICD_FILENAMES", &none)
        .env("VK_DRIVER_FILES", &none)
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", &none)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    // libtest prints "test NAME ... " on the line the child's own line continues.
    let line = ["OPENED ", "NODEVICE ", "OTHER "]
        .iter()
        .find_map(|tag| stdout.lines().find_map(|l| l.find(tag).map(|i| &l[i..])))
        .unwrap_or_else(|| panic!("child printed no result:\n{stdout}\n{stderr}"));
    eprintln!("with no Vulkan driver: {line}");
    let msg = line
        .strip_prefix("NODEVICE ")
        .map(str::trim_end)
        .unwrap_or_else(|| panic!("expected no wgpu device without a Vulkan driver, got: {line}"));
    assert!(msg.starts_with("no usable wgpu device: "), "{msg}");
    assert!(
        msg.contains("no Vulkan, Metal, DX12 or OpenGL adapter was found"),
        "{msg}"
    );
    assert!(msg.contains("mesa-vulkan-drivers"), "{msg}");
    assert!(
        !stderr.contains("panicked"),
        "the failed probe printed a panic on stderr:\n{stderr}"
    );
}
