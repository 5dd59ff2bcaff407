//! End-to-end tests across crates. Server and client tests join as those crates land.

use oh_protocol::wire;
use openhands::protocol::Event;

/// The facade re-exports the wire types, and an event survives a trip through it unchanged.
#[test]
fn facade_round_trips_a_captured_event_stream() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/oh-protocol/tests/fixtures/WsFrames/run.json"
    );
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let events: Vec<Event> = serde_json::from_value(original.clone()).unwrap();
    assert!(events.len() > 20, "the capture holds a whole run");
    assert_eq!(wire::to_compact_value(&events).unwrap(), original);
}
