//! A scripted OpenAI-compatible LLM on 127.0.0.1 that answers in well under a
//! millisecond, so agent runs measure the server and not the model.
//!
//! It is stateless, so any number of conversations can use it at once: a
//! request without tools (a title, a side call) gets a text answer; a request
//! whose last message is a tool result gets a `finish` call; any other request
//! gets a `terminal` call running `echo hi`. One run is therefore exactly two
//! agent steps: terminal, then finish.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The running LLM server; stops on drop.
#[derive(Debug)]
pub(crate) struct ScriptedLlm {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedLlm {
    /// Listens on `host:0`.
    pub(crate) async fn start() -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let counter = Arc::clone(&counter);
                        async move { Ok::<_, Infallible>(answer(request, &counter).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            requests,
            task,
        })
    }

    /// `http://127.0.0.1:PORT/v1`, the `base_url` for an `openai/` model.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Completion requests answered so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

async fn answer(request: Request<Incoming>, counter: &AtomicU64) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return respond(
                StatusCode::BAD_REQUEST,
                &json!({"error": "unreadable body"}),
            );
        }
    };
    if !path.ends_with("/chat/completions") {
        return respond(
            StatusCode::NOT_FOUND,
            &json!({"error": {"message": "not found"}}),
        );
    }
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    respond(StatusCode::OK, &completion(&body, n))
}

/// The chat completion answering `request`; `n` numbers the answers.
fn completion(request: &Value, n: u64) -> Value {
    let has_tools = request
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| !tools.is_empty());
    let last_role = request
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| messages.last())
        .and_then(|message| message.get("role"))
        .and_then(Value::as_str);
    let (message, finish_reason) = if !has_tools {
        (json!({"role": "assistant", "content": "Bench"}), "stop")
    } else {
        let (name, arguments) = if last_role == Some("tool") {
            ("finish", json!({"message": "done"}))
        } else {
            ("terminal", json!({"command": "echo hi"}))
        };
        let call = json!({
            "id": format!("call_bench_{n}"),
            "type": "function",
            "function": {"name": name, "arguments": arguments.to_string()},
        });
        (
            json!({"role": "assistant", "content": null, "tool_calls": [call]}),
            "tool_calls",
        )
    };
    json!({
        "id": format!("chatcmpl-bench-{n}"),
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": request.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    })
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_name(answer: &Value) -> Option<&str> {
        answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"].as_str()
    }

    #[test]
    fn two_steps_then_text_without_tools() {
        let tools = json!([{"type": "function", "function": {"name": "terminal"}}]);
        let first = json!({"tools": tools, "messages": [{"role": "system"}, {"role": "user"}]});
        assert_eq!(call_name(&completion(&first, 1)), Some("terminal"));
        let second = json!({"tools": tools, "messages": [{"role": "user"}, {"role": "assistant"}, {"role": "tool"}]});
        assert_eq!(call_name(&completion(&second, 2)), Some("finish"));
        let title = json!({"messages": [{"role": "user"}]});
        assert_eq!(
            completion(&title, 3)["choices"][0]["message"]["content"],
            "Bench"
        );
    }
}
