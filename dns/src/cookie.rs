//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018): the COOKIE EDNS
//! option read off a query, and the server cookie made and checked with the cluster's
//! secrets.
//!
//! A server cookie is version 1, three reserved bytes, a 4-byte timestamp (unix seconds,
//! serial arithmetic) and 8 bytes of SipHash-2-4, keyed by the secret, over the client
//! cookie, those 8 bytes and the client's address (RFC 9018 section 4). Every node of a
//! cluster holds the same secrets (replicated through Raft), so any of them accepts a
//! cookie another gave out; a cookie made with the previous secret is still accepted, so
//! one rotation does not invalidate the cookies in flight.
//!
//! **Invariant:** a query with a client cookie is answered with a fresh server cookie
//! whenever this node has secrets; without secrets (a Lite client) cookies are ignored,
//! which RFC 7873 section 5.2 allows.

use std::hash::Hasher as _;
use std::net::IpAddr;

use outpost_core::state::CookieSecrets;
use siphasher::sip::SipHasher24;

/// The EDNS option code of COOKIE (RFC 7873 section 4).
pub const COOKIE_OPTION: u16 = 10;
/// Length of a client cookie (RFC 7873 section 4).
pub const CLIENT_COOKIE_LEN: usize = 8;
/// Shortest and longest server cookie a client may send back (RFC 7873 section 4); an
/// option whose length is neither 8 nor 8 plus this range is malformed (FORMERR).
pub const SERVER_COOKIE_LENGTHS: std::ops::RangeInclusive<usize> = 8..=32;
/// Length of the server cookies we make (RFC 9018 section 4).
pub const SERVER_COOKIE_LEN: usize = 16;
/// Oldest server cookie accepted (RFC 9018 section 4.3: one hour); older, the client is
/// treated as unproven and gets a fresh one.
pub const COOKIE_LIFETIME_SECS: u32 = 3600;
/// How far in the future a server cookie's timestamp may be (RFC 9018 section 4.3: five
/// minutes of clock difference between the nodes of a cluster).
pub const COOKIE_CLOCK_SKEW_SECS: u32 = 300;
/// RFC 9018's server cookie version.
const VERSION: u8 = 1;

/// A COOKIE option as a query carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCookie {
    pub client: [u8; CLIENT_COOKIE_LEN],
    /// The server cookie the client sent back, `server_len` bytes of it.
    server: [u8; 32],
    server_len: usize,
}

/// The option's length is not 8, nor 16 to 40 (RFC 7873 section 5.2.2: FORMERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a COOKIE option of {0} bytes (a client cookie is 8, a server cookie 8 to 32 more)")]
pub struct MalformedCookie(pub usize);

impl ClientCookie {
    /// Reads the option's data.
    pub fn parse(data: &[u8]) -> Result<ClientCookie, MalformedCookie> {
        let malformed = MalformedCookie(data.len());
        let (client, rest) = data
            .split_first_chunk::<CLIENT_COOKIE_LEN>()
            .ok_or(malformed)?;
        if !rest.is_empty() && !SERVER_COOKIE_LENGTHS.contains(&rest.len()) {
            return Err(malformed);
        }
        let mut server = [0; 32];
        server
            .get_mut(..rest.len())
            .ok_or(malformed)?
            .copy_from_slice(rest);
        Ok(ClientCookie {
            client: *client,
            server,
            server_len: rest.len(),
        })
    }

    /// The server cookie sent back, if any.
    pub fn server(&self) -> Option<&[u8]> {
        self.server.get(..self.server_len).filter(|s| !s.is_empty())
    }

    /// Whether the server cookie sent back is one of ours, made for this client cookie and
    /// `client` with the current or previous secret, and neither older than
    /// [`COOKIE_LIFETIME_SECS`] nor more than [`COOKIE_CLOCK_SKEW_SECS`] ahead of `now`.
    pub fn is_valid(&self, secrets: &CookieSecrets, client: IpAddr, now: u32) -> bool {
        let Some(server) = self.server() else {
            return false;
        };
        let Some((head, hash)) = server.split_first_chunk::<8>() else {
            return false;
        };
        if server.len() != SERVER_COOKIE_LEN || head[0] != VERSION {
            return false;
        }
        let timestamp = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        // Serial arithmetic (RFC 1982): how far behind `now` the timestamp is.
        let age = now.wrapping_sub(timestamp) as i32;
        if age > COOKIE_LIFETIME_SECS as i32 || age < -(COOKIE_CLOCK_SKEW_SECS as i32) {
            return false;
        }
        std::iter::once(secrets.current)
            .chain(secrets.previous)
            .any(|secret| sip(&secret, &self.client, head, client).as_slice() == hash)
    }
}

/// The server cookie for `client_cookie` from `client` at `timestamp` (unix seconds).
pub fn server_cookie(
    secret: &[u8; 16],
    client_cookie: &[u8; CLIENT_COOKIE_LEN],
    timestamp: u32,
    client: IpAddr,
) -> [u8; SERVER_COOKIE_LEN] {
    let [t0, t1, t2, t3] = timestamp.to_be_bytes();
    let head = [VERSION, 0, 0, 0, t0, t1, t2, t3];
    let mut cookie = [0; SERVER_COOKIE_LEN];
    let (start, hash) = cookie.split_at_mut(8);
    start.copy_from_slice(&head);
    hash.copy_from_slice(&sip(secret, client_cookie, &head, client));
    cookie
}

/// SipHash-2-4 of client cookie | version | reserved | timestamp | client address.
fn sip(secret: &[u8; 16], client_cookie: &[u8; 8], head: &[u8; 8], client: IpAddr) -> [u8; 8] {
    let mut hasher = SipHasher24::new_with_key(secret);
    hasher.write(client_cookie);
    hasher.write(head);
    match client {
        IpAddr::V4(v4) => hasher.write(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hasher.write(&v4.octets()),
            None => hasher.write(&v6.octets()),
        },
    }
    hasher.finish().to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect()
    }

    fn secret(text: &str) -> [u8; 16] {
        hex(text).try_into().unwrap()
    }

    const RFC_SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

    #[test]
    fn server_cookies_match_rfc_9018_appendix_a() {
        let cases = [
            // A.1: learning a new server cookie.
            (
                "2464c4abcf10c957",
                "198.51.100.100",
                1559731985,
                "010000005cf79f111f8130c3eee29480",
            ),
            // A.2: the same client renewing it.
            (
                "2464c4abcf10c957",
                "198.51.100.100",
                1559734385,
                "010000005cf7a871d4a564a1442aca77",
            ),
            // A.3: another client renewing it.
            (
                "fc93fc62807ddb86",
                "203.0.113.203",
                1559734700,
                "010000005cf7a9acf73a7810aca2381e",
            ),
        ];
        for (client_cookie, ip, at, want) in cases {
            let client_cookie: [u8; 8] = hex(client_cookie).try_into().unwrap();
            let made = server_cookie(&secret(RFC_SECRET), &client_cookie, at, ip.parse().unwrap());
            assert_eq!(made.to_vec(), hex(want), "{ip} at {at}");
        }
    }

    #[test]
    fn option_lengths_other_than_8_and_16_to_40_are_malformed() {
        for len in [0, 1, 7, 9, 15, 41, 64] {
            assert_eq!(
                ClientCookie::parse(&vec![0; len]),
                Err(MalformedCookie(len))
            );
        }
        for len in [8, 16, 24, 40] {
            assert!(ClientCookie::parse(&vec![0; len]).is_ok(), "{len} bytes");
        }
    }

    fn secrets(current: u8, previous: Option<u8>) -> CookieSecrets {
        CookieSecrets {
            current: [current; 16],
            previous: previous.map(|byte| [byte; 16]),
            rotated_unix: 0,
        }
    }

    /// The option a client sends back: its cookie and the server cookie it was given.
    fn sent_back(secret: u8, ip: IpAddr, at: u32) -> ClientCookie {
        let client = [7; 8];
        let server = server_cookie(&[secret; 16], &client, at, ip);
        ClientCookie::parse(&[client.as_slice(), server.as_slice()].concat()).unwrap()
    }

    #[test]
    fn the_previous_secret_is_accepted_after_one_rotation_and_refused_after_two() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = 1_700_000_000;
        let cookie = sent_back(1, ip, now);
        assert!(cookie.is_valid(&secrets(1, None), ip, now));
        assert!(cookie.is_valid(&secrets(2, Some(1)), ip, now));
        assert!(!cookie.is_valid(&secrets(3, Some(2)), ip, now));
    }

    #[test]
    fn a_cookie_is_refused_from_another_address_when_stale_or_from_the_future() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = 1_700_000_000;
        let keys = secrets(1, None);
        assert!(!sent_back(1, ip, now).is_valid(&keys, "192.0.2.2".parse().unwrap(), now));
        assert!(sent_back(1, ip, now - COOKIE_LIFETIME_SECS).is_valid(&keys, ip, now));
        assert!(!sent_back(1, ip, now - COOKIE_LIFETIME_SECS - 1).is_valid(&keys, ip, now));
        assert!(sent_back(1, ip, now + COOKIE_CLOCK_SKEW_SECS).is_valid(&keys, ip, now));
        assert!(!sent_back(1, ip, now + COOKIE_CLOCK_SKEW_SECS + 1).is_valid(&keys, ip, now));
        let client_only = ClientCookie::parse(&[7; 8]).unwrap();
        assert!(!client_only.is_valid(&keys, ip, now));
    }
}
