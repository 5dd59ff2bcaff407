//! Conversation events over REST: `/api/conversations/{id}/events*` (spec §3.15).

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use oh_protocol::api::{
    ConfirmationResponseRequest, EventPage, EventSortOrder, SendMessageRequest, Success,
};
use oh_protocol::event::{Event, Source};
use oh_protocol::{Content, Message};
use serde_json::Value;

use crate::app::AppState;
use crate::conversations::{agent_error, live_or};
use crate::error::{ApiError, ApiResult, ok};
use crate::extract::{ConversationId, Json, Query, path_param};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/conversations/{conversation_id}/events/search",
            get(search),
        )
        .route(
            "/api/conversations/{conversation_id}/events/count",
            get(count),
        )
        .route(
            "/api/conversations/{conversation_id}/events/respond_to_confirmation",
            post(respond_to_confirmation),
        )
        .route(
            "/api/conversations/{conversation_id}/events/{event_id}",
            get(get_one),
        )
        .route(
            "/api/conversations/{conversation_id}/events",
            post(send_message).get(batch_get),
        )
}

fn not_found(id: uuid::Uuid) -> String {
    format!("Conversation not found: {id}")
}

/// Event filters shared by search and count.
struct Filter {
    kind: Option<String>,
    source: Option<Source>,
    body: Option<String>,
    gte: Option<String>,
    lt: Option<String>,
}

/// A timestamp filter, normalized to our event timestamps (naive UTC, six fraction digits).
fn timestamp_param(query: &Query, name: &str) -> ApiResult<Option<String>> {
    query.parse(name, "datetime_from_date_parsing", |raw| {
        oh_protocol::time::parse_datetime(raw)
            .map(|micros| oh_protocol::time::naive_timestamp(micros, 0))
            .ok_or_else(|| "Input should be a valid datetime".to_owned())
    })
}

impl Filter {
    fn from_query(query: &Query) -> ApiResult<Self> {
        let source = query.parse("source", "enum", |raw| {
            serde_json::from_value(Value::String(raw.to_owned()))
                .map_err(|_| "Input should be 'agent', 'user', 'environment' or 'hook'".to_owned())
        })?;
        Ok(Self {
            // 1.57.0 accepts the bare class name or the qualified Python path.
            kind: query
                .get("kind")
                .map(|k| k.rsplit('.').next().unwrap_or(k).to_owned()),
            source,
            body: query.get("body").map(str::to_lowercase),
            gte: timestamp_param(query, "timestamp__gte")?,
            lt: timestamp_param(query, "timestamp__lt")?,
        })
    }

    fn matches(&self, event: &Event) -> bool {
        if let Some(kind) = &self.kind
            && event.kind() != kind
        {
            return false;
        }
        let base = event.base();
        if let Some(source) = self.source
            && base.is_none_or(|b| b.source != source)
        {
            return false;
        }
        if let Some(gte) = &self.gte
            && base.is_none_or(|b| b.timestamp.as_str() < gte.as_str())
        {
            return false;
        }
        if let Some(lt) = &self.lt
            && base.is_none_or(|b| b.timestamp.as_str() >= lt.as_str())
        {
            return false;
        }
        if let Some(needle) = &self.body {
            let Event::Message(message) = event else {
                return false;
            };
            let mut text: String = message
                .llm_message
                .content
                .iter()
                .filter_map(Content::as_text)
                .chain(message.extended_content.iter().map(|c| c.text.as_str()))
                .collect::<Vec<_>>()
                .join("\n");
            if let Some(reasoning) = &message.llm_message.reasoning_content {
                text.push('\n');
                text.push_str(reasoning);
            }
            if !text.to_lowercase().contains(needle.as_str()) {
                return false;
            }
        }
        true
    }
}

async fn search(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    query: Query,
) -> ApiResult<Response> {
    let limit = query.limit()?;
    let filter = Filter::from_query(&query)?;
    let order = query
        .parse("sort_order", "enum", |raw| {
            serde_json::from_value::<EventSortOrder>(Value::String(raw.to_owned()))
                .map_err(|_| "Input should be 'TIMESTAMP' or 'TIMESTAMP_DESC'".to_owned())
        })?
        .unwrap_or_default();
    let page_id = query.get("page_id").map(str::to_owned);
    let live = live_or(&state, id, &not_found(id)).await?;
    let page = live.conv.with_events(|events| {
        let ordered: Box<dyn Iterator<Item = &Event>> = match order {
            EventSortOrder::TimestampDesc => Box::new(events.iter().rev()),
            _ => Box::new(events.iter()),
        };
        let ordered: Vec<&Event> = ordered.collect();
        let start = page_id
            .as_deref()
            .and_then(|page| ordered.iter().position(|e| e.id() == Some(page)))
            .unwrap_or(0);
        let mut matching = ordered[start..].iter().filter(|e| filter.matches(e));
        let items: Vec<Event> = matching
            .by_ref()
            .take(limit)
            .map(|e| (*e).clone())
            .collect();
        let next_page_id = matching.next().and_then(|e| e.id()).map(str::to_owned);
        EventPage {
            items,
            next_page_id,
        }
    });
    Ok(ok(&page))
}

async fn count(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    query: Query,
) -> ApiResult<Response> {
    let filter = Filter::from_query(&query)?;
    let live = live_or(&state, id, &not_found(id)).await?;
    let n = live
        .conv
        .with_events(|events| events.iter().filter(|e| filter.matches(e)).count());
    Ok(ok(&n))
}

async fn get_one(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let (mut parts, _) = req.into_parts();
    let ConversationId(id) = ConversationId::from_request_parts(&mut parts, &state).await?;
    let event_id = path_param(&mut parts, &state, "event_id").await?;
    let live = live_or(&state, id, &not_found(id)).await?;
    let event = live.conv.with_events(|events| {
        events
            .iter()
            .find(|e| e.id() == Some(event_id.as_str()))
            .cloned()
    });
    match event {
        Some(event) => Ok(ok(&event)),
        None => Err(ApiError::not_found()),
    }
}

/// Batch get: a JSON array of event ids in the body of a GET; `null` for unknown ids.
async fn batch_get(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(ids): Json<Vec<String>>,
) -> ApiResult<Response> {
    let live = live_or(&state, id, &not_found(id)).await?;
    let found: Vec<Option<Event>> = live.conv.with_events(|events| {
        ids.iter()
            .map(|wanted| {
                events
                    .iter()
                    .find(|e| e.id() == Some(wanted.as_str()))
                    .cloned()
            })
            .collect()
    });
    Ok(ok(&found))
}

async fn send_message(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(body): Json<SendMessageRequest>,
) -> ApiResult<Response> {
    let live = live_or(&state, id, &not_found(id)).await?;
    let message = Message::new(body.role, body.content);
    let text = crate::conversations::message_text(&message);
    live.conv.send_message(message).await.map_err(agent_error)?;
    live.autotitle(&text);
    live.mark_updated();
    state.activity.touch();
    if body.run {
        live.run_or_rerun()?;
    }
    Ok(ok(&Success::TRUE))
}

async fn respond_to_confirmation(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(body): Json<ConfirmationResponseRequest>,
) -> ApiResult<Response> {
    let live = live_or(&state, id, &not_found(id)).await?;
    if body.accept {
        live.run_or_rerun()?;
    } else {
        live.conv
            .reject_pending_actions(&body.reason)
            .map_err(agent_error)?;
        live.conv.flush().await;
        live.publish_full_state();
    }
    Ok(ok(&Success::TRUE))
}
