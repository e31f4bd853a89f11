//! Network partitions on loopback, made with iptables: a node's Raft endpoint (QUIC over
//! UDP on its own port) is cut off from every peer while its DNS, admin API and Lite sync
//! listeners (other ports) stay up, as when a box's link to the other boxes fails but
//! its LAN does not.
//!
//! **Invariant:** a rule names one port of one test's node, so tests running at the same
//! time never cut each other; every rule is deleted when its [`Partition`] is healed or
//! dropped (a failing test included).

use std::process::Command;

/// Rules in force until healed.
#[derive(Debug)]
pub struct Partition {
    port: u16,
    healed: bool,
}

/// The two rules that cut UDP `port` on loopback: nothing reaches it, nothing leaves it.
fn rules(port: u16) -> [Vec<String>; 2] {
    let port = port.to_string();
    let rule = |direction: &str| {
        [
            "INPUT", "-i", "lo", "-p", "udp", direction, &port, "-j", "DROP",
        ]
        .map(String::from)
        .to_vec()
    };
    [rule("--dport"), rule("--sport")]
}

fn iptables(action: &str, rule: &[String]) -> Result<(), String> {
    // -w: wait for the xtables lock, which tests running at once share. Not root: through
    // `sudo -n`, which fails at once rather than asking for a password.
    let mut command = if nix::unistd::geteuid().is_root() {
        Command::new("iptables")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "iptables"]);
        sudo
    };
    let output = command
        .arg("-w")
        .arg(action)
        .args(rule)
        .output()
        .map_err(|e| {
            format!(
                "cannot run iptables ({e}): partition tests need it, and root or password-less sudo (scripts/test.sh installs the Debian package)"
            )
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {action} {}: {}",
            rule.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Partition {
    /// Cuts UDP `port` on loopback off from everything (a Raft endpoint: see
    /// `Appliance::raft_port`).
    pub fn isolate_udp_port(port: u16) -> Partition {
        for rule in rules(port) {
            iptables("-I", &rule).unwrap_or_else(|e| panic!("{e}"));
        }
        Partition {
            port,
            healed: false,
        }
    }

    /// Lets traffic through again.
    pub fn heal(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        if self.healed {
            return;
        }
        self.healed = true;
        for rule in rules(self.port) {
            if let Err(error) = iptables("-D", &rule) {
                eprintln!("partition of port {} not healed: {error}", self.port);
            }
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.remove();
    }
}
