//! `/sockets/bash-events`: commands started over the socket, live events, replay, errors.

use super::common;

use common::{Socket, TestServer};
use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn connect(server: &TestServer, query: &str) -> Socket {
    let url = format!("ws://{}/sockets/bash-events{query}", server.addr);
    let (mut stream, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let auth = json!({"type": "auth", "session_api_key": server.key.as_deref().unwrap_or("")});
    stream
        .send(Message::Text(auth.to_string().into()))
        .await
        .expect("auth");
    Socket { stream }
}

#[tokio::test]
async fn commands_over_the_socket_and_replay() {
    let server = TestServer::with_key("bash-key").await;
    let mut socket = connect(&server, "").await;
    socket
        .stream
        .send(Message::Text(
            json!({"command": "echo over-socket; exit 4"})
                .to_string()
                .into(),
        ))
        .await
        .expect("send");
    let command = socket.next().await.expect("command");
    assert_eq!(command["kind"], "BashCommand");
    assert_eq!(command["command"], "echo over-socket; exit 4");
    let output = socket.next().await.expect("output");
    assert_eq!(output["kind"], "BashOutput");
    assert_eq!(output["stdout"], "over-socket\n");
    assert_eq!(output["exit_code"], 4);
    assert_eq!(output["command_id"], command["id"]);

    socket
        .stream
        .send(Message::Text("{\"nope\": 1}".into()))
        .await
        .expect("send");
    let error = socket.next().await.expect("error");
    assert_eq!(error["kind"], "BashError");
    assert_eq!(error["code"], "ValidationError");

    let mut replay = connect(&server, "?resend_mode=all").await;
    assert_eq!(replay.next().await.expect("replayed")["id"], command["id"]);
    assert_eq!(replay.next().await.expect("replayed")["id"], output["id"]);

    let url = format!(
        "ws://{}/sockets/bash-events?session_api_key=wrong",
        server.addr
    );
    assert!(
        tokio_tungstenite::connect_async(url).await.is_err(),
        "403 handshake"
    );
}
