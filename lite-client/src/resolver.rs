//! `outpost-lite resolver install|uninstall`: the operating system sends the replica's
//! zones, and only those, to the Lite client (split DNS):
//!
//! | system | what is written | applied by |
//! |---|---|---|
//! | Linux (systemd-resolved) | `/etc/systemd/resolved.conf.d/outpost-lite.conf`: `DNS=` the client, `Domains=~zone` per zone | `systemctl try-reload-or-restart systemd-resolved` |
//! | macOS | `/etc/resolver/<zone>` per zone: `nameserver` and `port` | the system reads the folder as it changes |
//! | Windows | NRPT rules (`Add-DnsClientNrptRule -Namespace .zone`), commented `outpost-lite` | PowerShell, as administrator |
//!
//! What was installed is kept in `<data-dir>/resolver.json`, so `uninstall` removes
//! exactly that, and the running client writes the files again when the replica's
//! zones change (the token's scope grew or shrank).
//!
//! **Invariant:** only files this module wrote are ever removed (each starts with
//! [`MARKER`]); a file of the same name written by someone else, or one it cannot read,
//! is refused, not overwritten. Paths and commands are built only from zone names of
//! letters, digits, `-` and `_` ([`check_zone`]): a name from `status.json`, written by
//! a user who may not be the one running `sudo`, can neither leave the resolver's
//! folder, add a line to a config, nor end a PowerShell string. Uninstall recomputes
//! the paths from the zones kept, never trusting a list of paths.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

/// The first line of every file written here.
pub const MARKER: &str =
    "# Written by outpost-lite resolver install; `outpost-lite resolver uninstall` removes it.";
/// What is installed, in the data directory.
pub const INSTALLED_FILE: &str = "resolver.json";
/// The NRPT rules' comment on Windows, by which uninstall finds them.
const NRPT_COMMENT: &str = "outpost-lite";

/// The system whose resolver is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Linux,
    Macos,
    Windows,
}

impl Os {
    /// The system this binary was built for.
    pub fn current() -> Os {
        if cfg!(target_os = "macos") {
            Os::Macos
        } else if cfg!(windows) {
            Os::Windows
        } else {
            Os::Linux
        }
    }
}

/// What `install` did, kept in [`INSTALLED_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub os: Os,
    /// Prefix of every path (`/` on a real system; a folder in tests).
    pub root: PathBuf,
    pub dns: SocketAddr,
    pub zones: Vec<String>,
    /// The files written, under `root`.
    pub files: Vec<PathBuf>,
}

/// Files to write and remove, and commands to run, in that order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub write: Vec<(PathBuf, String)>,
    pub remove: Vec<PathBuf>,
    pub commands: Vec<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error(
        "the replica has no zones yet: nothing to send to outpost-lite (wait until it has synced once)"
    )]
    NoZones,
    #[error(
        "zone {zone:?} is not a name a resolver's files can hold safely (only letters, digits, '-' and '_' in its labels)"
    )]
    Zone { zone: String },
    #[error("cannot keep what is installed in {path}: {source}")]
    Record {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "Windows sends DNS to port 53 only, and this client listens on {dns}: run it with --dns 127.0.0.1:53"
    )]
    WindowsPort { dns: SocketAddr },
    #[error(
        "{path} exists and was not written by outpost-lite (or cannot be read); move it away first"
    )]
    Foreign { path: PathBuf },
    #[error(
        "cannot write {path}: {source} (run as root, or use --dry-run to see what would be written)"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
}

/// `zone` without its final dot, checked: labels of 1 to 63 letters, digits, `-` and
/// `_`, at most 253 characters.
pub fn check_zone(zone: &str) -> Result<&str, ResolverError> {
    let bare = zone.strip_suffix('.').unwrap_or(zone);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    };
    if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(label_ok) {
        return Err(ResolverError::Zone {
            zone: zone.to_owned(),
        });
    }
    Ok(bare)
}

fn bare(zone: &str) -> &str {
    zone.strip_suffix('.').unwrap_or(zone)
}

/// What installing for `zones` served on `dns` means on `os`, under `root`.
pub fn plan_install(
    os: Os,
    root: &Path,
    dns: SocketAddr,
    zones: &[String],
) -> Result<Plan, ResolverError> {
    if zones.is_empty() {
        return Err(ResolverError::NoZones);
    }
    for zone in zones {
        check_zone(zone)?;
    }
    let mut plan = Plan::default();
    match os {
        Os::Linux => {
            let domains: Vec<String> = zones
                .iter()
                .map(|zone| format!("~{}", bare(zone)))
                .collect();
            let text = format!(
                "{MARKER}\n[Resolve]\nDNS={dns}\nDomains={}\n",
                domains.join(" ")
            );
            plan.write.push((linux_file(root), text));
            plan.commands.push(reload_resolved());
        }
        Os::Macos => {
            for zone in zones {
                let text = format!("{MARKER}\nnameserver {}\nport {}\n", dns.ip(), dns.port());
                plan.write.push((macos_dir(root).join(bare(zone)), text));
            }
        }
        Os::Windows => {
            if dns.port() != 53 {
                return Err(ResolverError::WindowsPort { dns });
            }
            let mut script = format!("{MARKER}\n{}\n", remove_nrpt());
            for zone in zones {
                script.push_str(&format!(
                    "Add-DnsClientNrptRule -Namespace '.{}' -NameServers '{}' -Comment '{NRPT_COMMENT}'\n",
                    bare(zone),
                    dns.ip()
                ));
            }
            plan.commands.push(powershell(&script));
        }
    }
    Ok(plan)
}

/// The files an install for `zones` writes on `os` under `root` (zones that do not
/// pass [`check_zone`] have none).
fn files_of(os: Os, root: &Path, zones: &[String]) -> Vec<PathBuf> {
    match os {
        Os::Linux => vec![linux_file(root)],
        Os::Macos => zones
            .iter()
            .filter_map(|zone| check_zone(zone).ok())
            .map(|zone| macos_dir(root).join(zone))
            .collect(),
        Os::Windows => Vec::new(),
    }
}

/// What removing `installed` means: its files (recomputed from its zones), then the
/// system told.
pub fn plan_uninstall(installed: &Installed) -> Plan {
    let mut plan = Plan {
        remove: files_of(installed.os, &installed.root, &installed.zones),
        ..Plan::default()
    };
    match installed.os {
        Os::Linux => plan.commands.push(reload_resolved()),
        Os::Macos => {}
        Os::Windows => plan
            .commands
            .push(powershell(&format!("{MARKER}\n{}\n", remove_nrpt()))),
    }
    plan
}

fn linux_file(root: &Path) -> PathBuf {
    root.join("etc/systemd/resolved.conf.d/outpost-lite.conf")
}

fn macos_dir(root: &Path) -> PathBuf {
    root.join("etc/resolver")
}

fn reload_resolved() -> Vec<String> {
    ["systemctl", "try-reload-or-restart", "systemd-resolved"]
        .map(String::from)
        .to_vec()
}

fn remove_nrpt() -> String {
    format!(
        "Get-DnsClientNrptRule | Where-Object Comment -eq '{NRPT_COMMENT}' | Remove-DnsClientNrptRule -Force"
    )
}

fn powershell(script: &str) -> Vec<String> {
    vec![
        "powershell".into(),
        "-NoProfile".into(),
        "-Command".into(),
        script.into(),
    ]
}

/// What `plan` would do, as a person reads it (`--dry-run`).
pub fn describe(plan: &Plan) -> String {
    let mut out = String::new();
    for path in &plan.remove {
        out.push_str(&format!("remove {}\n", path.display()));
    }
    for (path, text) in &plan.write {
        out.push_str(&format!("write {}:\n{text}\n", path.display()));
    }
    for command in &plan.commands {
        out.push_str(&format!("run: {}\n", command.join(" ")));
    }
    out
}

/// Carries `plan` out. Files first (a file not ours is refused), then the commands; with
/// `run_commands` false, the commands are left for the caller to print.
pub fn apply(plan: &Plan, run_commands: bool) -> Result<(), ResolverError> {
    for path in plan
        .remove
        .iter()
        .chain(plan.write.iter().map(|(path, _)| path))
    {
        check_ours(path)?;
    }
    for path in &plan.remove {
        match std::fs::remove_file(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(ResolverError::Write {
                    path: path.clone(),
                    source: error,
                });
            }
            _ => {}
        }
    }
    for (path, text) in &plan.write {
        let write = || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, text)
        };
        write().map_err(|source| ResolverError::Write {
            path: path.clone(),
            source,
        })?;
    }
    if run_commands {
        for command in &plan.commands {
            run(command)?;
        }
    }
    Ok(())
}

/// A path may be written or removed only when it does not exist or starts with
/// [`MARKER`]; one that cannot be read is not ours.
fn check_ours(path: &Path) -> Result<(), ResolverError> {
    match std::fs::read(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Ok(bytes) if bytes.starts_with(MARKER.as_bytes()) => Ok(()),
        _ => Err(ResolverError::Foreign {
            path: path.to_owned(),
        }),
    }
}

fn run(command: &[String]) -> Result<(), ResolverError> {
    let Some((program, args)) = command.split_first() else {
        return Ok(());
    };
    let failed = |detail: String| ResolverError::Command {
        command: command.join(" "),
        detail,
    };
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| failed(error.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ))
    }
}

/// The files an install plan writes, as [`Installed`] keeps them.
pub fn installed(os: Os, root: &Path, dns: SocketAddr, zones: &[String], plan: &Plan) -> Installed {
    Installed {
        os,
        root: root.to_owned(),
        dns,
        zones: zones.to_vec(),
        files: plan.write.iter().map(|(path, _)| path.clone()).collect(),
    }
}

/// Reads `<data_dir>/resolver.json`; `None` when nothing is installed.
pub fn read_installed(data_dir: &Path) -> Option<Installed> {
    let text = std::fs::read_to_string(data_dir.join(INSTALLED_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes (or, with `None`, removes) `<data_dir>/resolver.json`.
pub fn write_installed(data_dir: &Path, installed: Option<&Installed>) -> std::io::Result<()> {
    let path = data_dir.join(INSTALLED_FILE);
    match installed {
        Some(installed) => {
            let text = serde_json::to_string_pretty(installed).map_err(std::io::Error::other)?;
            std::fs::write(path, text)
        }
        None => match std::fs::remove_file(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        },
    }
}

/// What installing for `zones` does over what `previous` installed: the install, and
/// the removal of the files it no longer writes.
pub fn plan_reinstall(
    previous: Option<&Installed>,
    (os, root, dns): (Os, &Path, SocketAddr),
    zones: &[String],
) -> Result<Plan, ResolverError> {
    let mut plan = plan_install(os, root, dns, zones)?;
    if let Some(previous) = previous {
        plan.remove = plan_uninstall(previous)
            .remove
            .into_iter()
            .filter(|file| !plan.write.iter().any(|(path, _)| path == file))
            .collect();
    }
    Ok(plan)
}

/// Installs for `zones`, replacing what `previous` installed (files no longer needed are
/// removed), and keeps the result in `data_dir`. Before anything is touched, the union
/// of both is kept there, so a failure part-way leaves nothing that uninstall does not
/// know about.
pub fn reinstall(
    data_dir: &Path,
    previous: Option<&Installed>,
    (os, root, dns): (Os, &Path, SocketAddr),
    zones: &[String],
    run_commands: bool,
) -> Result<Installed, ResolverError> {
    let plan = plan_reinstall(previous, (os, root, dns), zones)?;
    let mut known = zones.to_vec();
    if let Some(previous) = previous {
        known.extend(
            previous
                .zones
                .iter()
                .filter(|zone| !zones.contains(zone))
                .cloned(),
        );
    }
    let keep = |installed: &Installed| {
        write_installed(data_dir, Some(installed)).map_err(|source| ResolverError::Record {
            path: data_dir.join(INSTALLED_FILE),
            source,
        })
    };
    let pending = Installed {
        os,
        root: root.to_owned(),
        dns,
        zones: known,
        files: Vec::new(),
    };
    keep(&pending)?;
    apply(&plan, run_commands)?;
    let now = installed(os, root, dns, zones, &plan);
    keep(&now)?;
    Ok(now)
}

#[cfg(test)]
mod tests;
