//! Status transitions, under a paused clock: Synced only at the announced head, Stale
//! after 15 s of silence, and the file's fields.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

fn board() -> StatusBoard {
    StatusBoard::new(SocketAddr::from(([127, 0, 0, 1], 5354)), None, None, (0, 0))
}

#[tokio::test(start_paused = true)]
async fn a_session_goes_connecting_syncing_synced_stale_disconnected() {
    let board = board();
    assert_eq!(board.state(), SyncState::Disconnected);
    board.connecting("ws://a/v1/sync");
    assert_eq!(board.state(), SyncState::Connecting);

    board.welcomed(10, true);
    assert_eq!(board.state(), SyncState::Syncing, "a snapshot follows");
    board.committed(Some(8), (1, 5));
    assert_eq!(
        board.state(),
        SyncState::Syncing,
        "snapshot as of 8 < head 10"
    );
    board.committed(Some(10), (1, 6));
    assert_eq!(board.state(), SyncState::Synced);

    board.announced(12);
    assert_eq!(
        board.state(),
        SyncState::Syncing,
        "a new head was announced"
    );
    board.committed(Some(12), (1, 7));
    assert_eq!(board.state(), SyncState::Synced);

    tokio::time::advance(STALE_AFTER - Duration::from_millis(1)).await;
    assert_eq!(board.state(), SyncState::Synced);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(board.state(), SyncState::Stale);
    board.heard();
    assert_eq!(board.state(), SyncState::Synced);

    board.disconnected(Some("link down".into()));
    assert_eq!(board.state(), SyncState::Disconnected);
    let file = board.to_file(Some("d".into()));
    assert_eq!(file.error.as_deref(), Some("link down"));
    assert_eq!(
        (file.cursor, file.head, file.lag),
        (Some(12), Some(12), Some(0))
    );
    assert_eq!((file.zones, file.records), (1, 7));
}

#[tokio::test(start_paused = true)]
async fn the_first_entry_is_not_synced() {
    let board = board();
    board.connecting("ws://a/v1/sync");
    board.welcomed(100, false);
    board.committed(Some(1), (1, 1));
    assert_eq!(board.state(), SyncState::Syncing);
    let file = board.to_file(None);
    assert_eq!(file.lag, Some(99));
    board.committed(Some(100), (1, 1));
    assert_eq!(board.state(), SyncState::Synced);
}

#[tokio::test(start_paused = true)]
async fn a_resumed_session_at_the_head_is_synced_at_once() {
    let board = StatusBoard::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Some(7),
        Some(7),
        (1, 3),
    );
    assert_eq!(
        board.state(),
        SyncState::Disconnected,
        "a stored cursor alone is not Synced"
    );
    board.connecting("ws://a/v1/sync");
    board.welcomed(7, false);
    assert_eq!(board.state(), SyncState::Synced);
    board.connecting("ws://b/v1/sync");
    assert_eq!(board.state(), SyncState::Connecting);
}

#[test]
fn derive_state_table() {
    let now = Instant::now();
    let recent = Some(now);
    let facts = |link, cursor, head, in_snapshot, last_frame| Facts {
        link,
        cursor,
        head,
        in_snapshot,
        last_frame,
    };
    let table = [
        (
            facts(Link::Disconnected, Some(5), Some(5), false, recent),
            SyncState::Disconnected,
        ),
        (
            facts(Link::Connecting, Some(5), Some(5), false, recent),
            SyncState::Connecting,
        ),
        (
            facts(Link::Connected, Some(5), Some(5), false, recent),
            SyncState::Synced,
        ),
        (
            facts(Link::Connected, Some(6), Some(5), false, recent),
            SyncState::Synced,
        ),
        (
            facts(Link::Connected, Some(4), Some(5), false, recent),
            SyncState::Syncing,
        ),
        (
            facts(Link::Connected, None, Some(5), false, recent),
            SyncState::Syncing,
        ),
        (
            facts(Link::Connected, Some(5), None, false, recent),
            SyncState::Syncing,
        ),
        (
            facts(Link::Connected, Some(5), Some(5), true, recent),
            SyncState::Syncing,
        ),
        (
            facts(Link::Connected, Some(5), Some(5), false, None),
            SyncState::Stale,
        ),
    ];
    for (facts, expected) in table {
        assert_eq!(derive_state(&facts, now), expected, "{facts:?}");
    }
}

#[tokio::test]
async fn the_status_file_round_trips_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let board = board();
    board.connecting("ws://127.0.0.1:8054/v1/sync");
    board.welcomed(3, false);
    board.committed(Some(3), (2, 9));
    write_status_file(dir.path(), &board.to_file(Some("abc".into())))
        .await
        .unwrap();
    let file = read_status_file(dir.path()).unwrap();
    assert_eq!(file.state, SyncState::Synced);
    assert_eq!(file.dns, "127.0.0.1:5354");
    assert_eq!(file.pid, std::process::id());
    assert!(!is_running(&file), "the test binary is not outpost-lite");
    let text = render(&file, true, file.updated_unix);
    assert!(text.contains("Synced"), "{text}");
    assert!(text.contains("2 zones, 9 records"), "{text}");
    let text = render(&file, false, file.updated_unix);
    assert!(text.contains("not running"), "{text}");
    assert!(matches!(
        read_status_file(&dir.path().join("nowhere")),
        Err(StatusError::Missing { .. })
    ));
}
