//! A real Knot DNS server (Debian `knot`, installed by scripts/test.sh) as a secondary or
//! a primary of outpost, and `kdig` to ask either.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The TSIG key both sides know in the transfer tests.
pub const TSIG_KEY: &str = "knot-xfr.";
pub const TSIG_SECRET: &str = "c2VjcmV0IHNoYXJlZCB3aXRoIHRoZSBzZWNvbmRhcnkgMDEyMzQ1Njc4OQ==";

/// A port free on loopback for both UDP and TCP, for Knot, which cannot be given port 0
/// and report the one it took.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running knotd, killed when dropped.
pub struct Knot {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Knot {
    /// knotd on 127.0.0.1:`port` in `dir` with `zones`, the `zone:` section of its
    /// config (each entry indented as under `zone:`). Defined for them: the TSIG key; a
    /// remote per address of `outpost`, `node0`, `node1`..., the first also named
    /// `outpost`, each signed with the key; ACLs `notify_from_outpost` and
    /// `transfer_to_outpost` for the first address's IP.
    pub fn start(dir: &Path, port: u16, outpost: &[SocketAddr], zones: &str) -> Knot {
        let mut remotes = String::new();
        for (index, addr) in outpost.iter().enumerate() {
            let ids = if index == 0 {
                vec!["outpost".to_string()]
            } else {
                Vec::new()
            };
            for id in ids.into_iter().chain([format!("node{index}")]) {
                remotes.push_str(&format!(
                    "  - id: {id}\n    address: {}@{}\n    key: {TSIG_KEY}\n",
                    addr.ip(),
                    addr.port()
                ));
            }
        }
        let config = format!(
            r#"server:
    rundir: "{dir}"
    listen: 127.0.0.1@{port}
control:
    listen: "{dir}/knot.sock"
log:
  - target: stderr
    any: info
database:
    storage: "{dir}"
key:
  - id: {TSIG_KEY}
    algorithm: hmac-sha256
    secret: {TSIG_SECRET}
remote:
{remotes}acl:
  - id: notify_from_outpost
    address: {ip}
    action: notify
    key: {TSIG_KEY}
  - id: transfer_to_outpost
    address: {ip}
    action: transfer
    key: {TSIG_KEY}
template:
  - id: default
    storage: "{dir}"
    zonefile-sync: -1
zone:
{zones}"#,
            dir = dir.display(),
            ip = outpost[0].ip(),
        );
        std::fs::write(dir.join("knot.conf"), config).unwrap();
        let child = Command::new(Self::binary("knotd"))
            .args(["-c", &dir.join("knot.conf").display().to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("knot.log")).unwrap())
            .spawn()
            .expect("run knotd (Debian package knot; scripts/test.sh installs it)");
        Knot {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_owned(),
        }
    }

    /// Debian puts the daemon and its control tool in /usr/sbin, which a user's PATH may
    /// not hold.
    fn binary(name: &str) -> PathBuf {
        let sbin = Path::new("/usr/sbin").join(name);
        if sbin.exists() {
            sbin
        } else {
            PathBuf::from(name)
        }
    }

    /// `knotc` against this server: its output, which must say OK.
    pub fn control(&self, args: &[&str]) -> String {
        let output = Command::new(Self::binary("knotc"))
            .args(["-c", &self.dir.join("knot.conf").display().to_string()])
            .args(args)
            .output()
            .expect("run knotc");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "knotc {args:?}: {text}");
        text
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("knot.log")).unwrap_or_default()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kdig` at `addr` with `args`: what it printed.
pub fn kdig(addr: SocketAddr, args: &[&str]) -> String {
    let output = Command::new("kdig")
        .args([&format!("@{}", addr.ip()), "-p", &addr.port().to_string()])
        .args(["+timeout=5", "+retry=0"])
        .args(args)
        .output()
        .expect("run kdig (Debian package knot-dnsutils)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The serial `addr` serves for `zone`, if it answers one.
pub fn serial(addr: SocketAddr, zone: &str) -> Option<u32> {
    let answer = kdig(addr, &["+short", zone, "SOA"]);
    answer.split_whitespace().nth(2)?.parse().ok()
}

/// Whether every server of `addrs` answers `serial` for `zone` within `wait`.
pub fn serial_everywhere(
    addrs: &[SocketAddr],
    zone: &str,
    serial_now: u32,
    wait: Duration,
) -> bool {
    crate::wait_until(wait, || {
        addrs
            .iter()
            .all(|addr| serial(*addr, zone) == Some(serial_now))
    })
}

/// What `addr` answers for each of `questions`, as `kdig +short` prints it.
pub fn answers(addr: SocketAddr, questions: &[(&str, &str)]) -> Vec<String> {
    questions
        .iter()
        .map(|(name, rtype)| kdig(addr, &["+short", name, rtype]).trim().to_string())
        .collect()
}
