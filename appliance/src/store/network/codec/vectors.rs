//! Pins the Raft wire's bytes: `raft-vectors.txt` holds one fixed example of every request and
//! reply (and of every outcome and error a reply carries), as `name hex`. Encoding the examples
//! must give exactly those bytes, and decoding the bytes and encoding them again must give them
//! back, so a change to a message type (a reordered variant, a field of another type, a payload
//! moved to another module that serializes differently) fails here before it reaches a cluster
//! upgraded one box at a time.
//!
//! The file is written once and then only appended to: a line never changes within a wire
//! version. A new example fails with the line to add.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::entry::RaftEntry;
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, Membership, RaftTypeConfig};
use outpost_core::state::{Change, Command, CommandError};

use super::{WIRE_VERSION, decode, encode};
use crate::store::rpc::{
    JoinOutcome, JoinRequest, PeerProgress, Progress, RaftReply, RaftRequest, RelayedOutcome,
    RemoteMembershipError, RemoteReadError,
};
use crate::store::types::{
    AppendEntriesRequest, AppendEntriesResponse, Entry, LogId, NodeInfo, Proposal, SnapshotMeta,
    SnapshotResponse, StoredMembership, TypeConfig, Vote, VoteRequest, VoteResponse,
};

const VECTORS: &str = include_str!("raft-vectors.txt");

/// How many variants `RaftRequest` and `RaftReply` have: every one needs an example.
const REQUEST_VARIANTS: u8 = 10;
const REPLY_VARIANTS: u8 = 13;

/// An address as the membership holds it (the wire carries it as text, unparsed).
const ADDR: &str = "node-9@192.0.2.9:7400";

fn vote(term: u64, node: u64) -> Vote {
    Vote::new(term, node)
}

fn log_id(term: u64, node: u64, index: u64) -> LogId {
    type LeaderId = <TypeConfig as RaftTypeConfig>::LeaderId;
    LogId::new(LeaderId::new_committed(term, node), index)
}

fn membership() -> Membership<u64, NodeInfo> {
    let membership = Membership::new(
        vec![BTreeSet::from([1, 2])],
        BTreeMap::from([
            (1, NodeInfo::new("node-1@192.0.2.1:7400")),
            (2, NodeInfo::new("node-2@192.0.2.2:7400")),
            (3, NodeInfo::new("node-3@192.0.2.3:7400")),
        ]),
    );
    membership.expect("voters 1 and 2, learner 3")
}

fn entries() -> Vec<Entry> {
    vec![
        Entry::new(
            log_id(3, 2, 17),
            EntryPayload::Normal(Proposal(Command::DeleteZone {
                origin: "old.internal.".into(),
            })),
        ),
        Entry::new(log_id(3, 2, 18), EntryPayload::Blank),
        Entry::new(log_id(3, 2, 19), EntryPayload::Membership(membership())),
    ]
}

fn requests() -> Vec<(&'static str, RaftRequest)> {
    vec![
        (
            "request-append-entries",
            RaftRequest::AppendEntries(AppendEntriesRequest {
                vote: vote(3, 2),
                prev_log_id: Some(log_id(2, 1, 16)),
                entries: entries(),
                leader_commit: Some(log_id(2, 1, 16)),
            }),
        ),
        (
            "request-heartbeat",
            RaftRequest::AppendEntries(AppendEntriesRequest {
                vote: vote(1, 1),
                prev_log_id: None,
                entries: Vec::new(),
                leader_commit: None,
            }),
        ),
        (
            "request-vote",
            RaftRequest::Vote(VoteRequest::new(vote(3, 2), Some(log_id(2, 1, 17)))),
        ),
        (
            "request-pre-vote",
            RaftRequest::PreVote(VoteRequest::new(vote(4, 3), None)),
        ),
        (
            "request-snapshot-chunk",
            RaftRequest::SnapshotChunk {
                vote: vote(3, 2),
                meta: SnapshotMeta {
                    last_log_id: Some(log_id(3, 2, 19)),
                    last_membership: StoredMembership::new(Some(log_id(3, 2, 19)), membership()),
                },
                total: 10,
                offset: 4,
                data: b"4567".to_vec(),
            },
        ),
        (
            "request-client-write",
            RaftRequest::ClientWrite(Command::ReplaceRRset {
                owner: "www.site.internal.".into(),
                rtype: 1,
                records: vec![10, 0, 0, 7],
            }),
        ),
        (
            "request-join",
            RaftRequest::Join(JoinRequest {
                secret: [7; 32],
                node_id: 0x12_3456_789a,
                addr: ADDR.into(),
            }),
        ),
        (
            "request-remove-node",
            RaftRequest::RemoveNode { node_id: 5 },
        ),
        ("request-progress", RaftRequest::Progress),
        ("request-read-index", RaftRequest::ReadIndex),
        (
            "request-set-address",
            RaftRequest::SetAddress {
                node_id: 5,
                addr: ADDR.into(),
            },
        ),
    ]
}

fn raft_replies() -> Vec<(&'static str, RaftReply)> {
    vec![
        (
            "reply-append-entries",
            RaftReply::AppendEntries(AppendEntriesResponse::Success),
        ),
        (
            "reply-append-entries-partial",
            RaftReply::AppendEntries(AppendEntriesResponse::PartialSuccess(Some(log_id(
                3, 2, 18,
            )))),
        ),
        (
            "reply-append-entries-conflict",
            RaftReply::AppendEntries(AppendEntriesResponse::Conflict),
        ),
        (
            "reply-append-entries-higher-vote",
            RaftReply::AppendEntries(AppendEntriesResponse::HigherVote(vote(5, 3))),
        ),
        (
            "reply-vote",
            RaftReply::Vote(VoteResponse::new(vote(3, 2), Some(log_id(2, 1, 17)), true)),
        ),
        (
            "reply-pre-vote",
            RaftReply::PreVote(VoteResponse::new(vote(4, 1), None, false)),
        ),
        (
            "reply-install-snapshot",
            RaftReply::InstallSnapshot(SnapshotResponse::new(vote(3, 2))),
        ),
        (
            "reply-unavailable",
            RaftReply::Unavailable("the store is shut down".into()),
        ),
        (
            "reply-snapshot-chunk-stored",
            RaftReply::SnapshotChunkStored,
        ),
        (
            "reply-snapshot-chunk-refused",
            RaftReply::SnapshotChunkRefused("chunk at offset 8 does not continue".into()),
        ),
    ]
}

fn relayed_replies() -> Vec<(&'static str, RaftReply)> {
    vec![
        (
            "reply-client-write-written",
            RaftReply::ClientWrite(RelayedOutcome::Written {
                index: 42,
                changes: vec![Change::ZoneDeleted {
                    origin: "old.internal.".into(),
                }],
            }),
        ),
        (
            "reply-client-write-rejected",
            RaftReply::ClientWrite(RelayedOutcome::Rejected(CommandError::NoSuchZone {
                origin: "gone.internal.".into(),
            })),
        ),
        (
            "reply-client-write-not-leader",
            RaftReply::ClientWrite(RelayedOutcome::NotLeader { leader: Some(3) }),
        ),
        (
            "reply-client-write-too-large",
            RaftReply::ClientWrite(RelayedOutcome::TooLarge { bytes: 20_000_000 }),
        ),
        (
            "reply-client-write-timeout",
            RaftReply::ClientWrite(RelayedOutcome::Timeout { waited_ms: 60_000 }),
        ),
        (
            "reply-client-write-failed",
            RaftReply::ClientWrite(RelayedOutcome::Failed("raft stopped".into())),
        ),
        (
            "reply-join-joined",
            RaftReply::Join(JoinOutcome::Joined {
                voters: vec![1, 2, 0x12_3456_789a],
            }),
        ),
        (
            "reply-join-not-leader",
            RaftReply::Join(JoinOutcome::NotLeader {
                leader: Some((3, ADDR.into())),
            }),
        ),
        (
            "reply-join-not-leader-unknown",
            RaftReply::Join(JoinOutcome::NotLeader { leader: None }),
        ),
        (
            "reply-join-refused",
            RaftReply::Join(JoinOutcome::Refused("the join ticket expired".into())),
        ),
        (
            "reply-join-failed",
            RaftReply::Join(JoinOutcome::Failed("no quorum".into())),
        ),
    ]
}

fn membership_replies() -> Vec<(&'static str, RaftReply)> {
    vec![
        ("reply-remove-node", RaftReply::RemoveNode(Ok(()))),
        (
            "reply-remove-node-not-leader",
            RaftReply::RemoveNode(Err(RemoteMembershipError::NotLeader { leader: Some(3) })),
        ),
        (
            "reply-remove-node-refused",
            RaftReply::RemoveNode(Err(RemoteMembershipError::Refused(
                "already undergoing a configuration change".into(),
            ))),
        ),
        (
            "reply-remove-node-timeout",
            RaftReply::RemoveNode(Err(RemoteMembershipError::Timeout(Duration::from_millis(
                1500,
            )))),
        ),
        (
            "reply-remove-node-raft",
            RaftReply::RemoveNode(Err(RemoteMembershipError::Raft("stopped".into()))),
        ),
        (
            "reply-remove-node-no-such-node",
            RaftReply::RemoveNode(Err(RemoteMembershipError::NoSuchNode(9))),
        ),
        (
            "reply-remove-node-last-voter",
            RaftReply::RemoveNode(Err(RemoteMembershipError::LastVoter(1))),
        ),
        (
            "reply-remove-node-quorum-loss",
            RaftReply::RemoveNode(Err(RemoteMembershipError::QuorumLoss {
                node: 2,
                voters_left: 2,
                reachable: 1,
                quorum: 2,
            })),
        ),
        (
            "reply-remove-node-leader-unreachable",
            RaftReply::RemoveNode(Err(RemoteMembershipError::LeaderUnreachable {
                leader: 3,
                reason: "connection lost".into(),
            })),
        ),
        ("reply-set-address", RaftReply::SetAddress(Ok(()))),
        (
            "reply-set-address-no-such-node",
            RaftReply::SetAddress(Err(RemoteMembershipError::NoSuchNode(9))),
        ),
    ]
}

fn read_replies() -> Vec<(&'static str, RaftReply)> {
    vec![
        (
            "reply-progress",
            RaftReply::Progress(Ok(Progress {
                last_log_index: Some(42),
                peers: vec![
                    PeerProgress {
                        id: 1,
                        matched_index: Some(42),
                        last_contact_ms: Some(0),
                    },
                    PeerProgress {
                        id: 2,
                        matched_index: None,
                        last_contact_ms: None,
                    },
                ],
            })),
        ),
        (
            "reply-progress-not-leader",
            RaftReply::Progress(Err(RemoteReadError::NotLeader { leader: None })),
        ),
        (
            "reply-progress-no-quorum",
            RaftReply::Progress(Err(RemoteReadError::NoQuorum("2 of 3 silent".into()))),
        ),
        (
            "reply-progress-timeout",
            RaftReply::Progress(Err(RemoteReadError::Timeout(Duration::from_secs(60)))),
        ),
        (
            "reply-progress-raft",
            RaftReply::Progress(Err(RemoteReadError::Raft("stopped".into()))),
        ),
        (
            "reply-progress-leader-unreachable",
            RaftReply::Progress(Err(RemoteReadError::LeaderUnreachable {
                leader: 3,
                reason: "connection lost".into(),
            })),
        ),
        ("reply-read-index", RaftReply::ReadIndex(Ok(42))),
        (
            "reply-read-index-not-leader",
            RaftReply::ReadIndex(Err(RemoteReadError::NotLeader { leader: Some(3) })),
        ),
    ]
}

fn replies() -> Vec<(&'static str, RaftReply)> {
    let mut replies = raft_replies();
    replies.extend(relayed_replies());
    replies.extend(membership_replies());
    replies.extend(read_replies());
    replies
}

/// The vectors file's `name hex` lines; `#` starts a comment line.
fn vectors() -> Vec<(&'static str, &'static str)> {
    VECTORS
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.split_once(' ')
                .unwrap_or_else(|| panic!("not a `name hex` line: {line:?}"))
        })
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn from_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex length: {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex digits"))
        .collect()
}

/// Checks `examples` against the pinned vectors with `reencode` (decode, then encode again);
/// returns the `name hex` lines of examples that have no vector yet.
fn check(
    examples: Vec<(&'static str, Vec<u8>)>,
    reencode: fn(&[u8]) -> Vec<u8>,
    missing: &mut Vec<String>,
) {
    let vectors = vectors();
    for (name, encoded) in examples {
        let encoded = to_hex(&encoded);
        let Some((_, pinned)) = vectors.iter().find(|(vector, _)| *vector == name) else {
            missing.push(format!("{name} {encoded}"));
            continue;
        };
        assert_eq!(
            &encoded, pinned,
            "{name}: the example no longer encodes to its pinned bytes (the raft wire changed)"
        );
        assert_eq!(
            to_hex(&reencode(&from_hex(pinned))),
            *pinned,
            "{name}: the pinned bytes do not decode and encode back to themselves"
        );
    }
}

#[test]
fn raft_examples_encode_to_the_pinned_bytes_and_back() {
    let mut missing = Vec::new();
    let requests = requests()
        .into_iter()
        .map(|(name, request)| (name, encode(&request).expect("encode")))
        .collect();
    check(
        requests,
        |bytes| encode(&decode::<RaftRequest>(bytes).expect("decode")).expect("encode"),
        &mut missing,
    );
    let replies = replies()
        .into_iter()
        .map(|(name, reply)| (name, encode(&reply).expect("encode")))
        .collect();
    check(
        replies,
        |bytes| encode(&decode::<RaftReply>(bytes).expect("decode")).expect("encode"),
        &mut missing,
    );
    assert!(
        missing.is_empty(),
        "examples without a vector; append these lines to raft-vectors.txt:\n{}",
        missing.join("\n")
    );
}

#[test]
fn raft_every_vector_has_an_example_and_a_unique_name() {
    let mut names: Vec<&str> = requests().iter().map(|(name, _)| *name).collect();
    names.extend(replies().iter().map(|(name, _)| *name));
    let vectors = vectors();
    for (n, (name, _)) in vectors.iter().enumerate() {
        assert!(names.contains(name), "vector {name} has no example");
        assert!(
            !vectors[..n].iter().any(|(earlier, _)| earlier == name),
            "vector {name} is there twice"
        );
    }
}

#[test]
fn raft_every_variant_has_an_example() {
    // The version byte, then the variant's index as a postcard varint: one byte below 128.
    let variants = |messages: Vec<Vec<u8>>| -> BTreeSet<u8> {
        messages
            .iter()
            .map(|bytes| {
                assert_eq!(bytes[0], WIRE_VERSION);
                bytes[1]
            })
            .collect()
    };
    let requests = requests()
        .iter()
        .map(|(_, request)| encode(request).expect("encode"))
        .collect();
    assert_eq!(variants(requests), (0..REQUEST_VARIANTS).collect());
    let replies = replies()
        .iter()
        .map(|(_, reply)| encode(reply).expect("encode"))
        .collect();
    assert_eq!(variants(replies), (0..REPLY_VARIANTS).collect());
}
