//! Per-call metrics and cost (§3.8; `utils/metrics.py`, `utils/telemetry.py`).

use oh_protocol::state::{Cost, Metrics, ResponseLatency, TokenUsage};

use super::model::ModelInfo;
use super::openai::Usage;

/// Seconds since the Unix epoch.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A zero accumulated usage, as the reference's `Metrics` validator creates it.
pub(crate) fn zero_usage(model: &str) -> TokenUsage {
    TokenUsage {
        model: model.to_owned(),
        ..TokenUsage::default()
    }
}

/// Fresh metrics for `model`.
pub(crate) fn new_metrics(model: &str) -> Metrics {
    Metrics {
        model_name: model.to_owned(),
        accumulated_cost: 0.0,
        max_budget_per_task: None,
        accumulated_token_usage: Some(zero_usage(model)),
        costs: Vec::new(),
        response_latencies: Vec::new(),
        token_usages: Vec::new(),
    }
}

/// Where a call's price comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pricing {
    /// `x-litellm-response-cost` of the response, when a proxy reported it.
    pub(crate) header_cost: Option<f64>,
    /// Configured `(input, output)` USD per token, when both are set.
    pub(crate) custom: Option<(f64, f64)>,
    /// The built-in table entry of the model.
    pub(crate) table: Option<ModelInfo>,
}

/// The USD cost of one call: the proxy's header first, then the custom per-token prices
/// (prompt · input + completion · output), then the built-in table (with cache-read and
/// cache-write prices where known). `None` when nothing is known.
pub(crate) fn cost(pricing: &Pricing, usage: Option<&Usage>) -> Option<f64> {
    if let Some(c) = pricing.header_cost.filter(|c| c.is_finite() && *c >= 0.0) {
        return Some(c);
    }
    let usage = usage?;
    let prompt = usage.prompt_tokens as f64;
    let completion = usage.completion_tokens as f64;
    if let Some((input, output)) = pricing.custom {
        return Some(prompt * input + completion * output);
    }
    let info = pricing.table?;
    let cache_read = usage.cache_read_tokens as f64;
    let cache_write = usage.cache_write_tokens as f64;
    let regular = (prompt - cache_read - cache_write).max(0.0);
    Some(
        regular * info.input_cost
            + cache_read * info.cache_read_cost.unwrap_or(info.input_cost)
            + cache_write * info.cache_write_cost.unwrap_or(info.input_cost)
            + completion * info.output_cost,
    )
}

/// Records one successful response: latency, cost (when positive) and token usage (when
/// any prompt or completion tokens were reported).
pub(crate) fn record(
    metrics: &mut Metrics,
    latency_secs: f64,
    response_id: &str,
    cost: Option<f64>,
    usage: Option<&Usage>,
    context_window: u64,
) {
    let model = metrics.model_name.clone();
    metrics.response_latencies.push(ResponseLatency {
        model: model.clone(),
        latency: latency_secs.max(0.0),
        response_id: response_id.to_owned(),
    });
    if let Some(c) = cost.filter(|c| *c > 0.0 && c.is_finite()) {
        metrics.accumulated_cost += c;
        metrics.costs.push(Cost {
            model: model.clone(),
            cost: c,
            timestamp: unix_now(),
        });
    }
    let Some(u) = usage.filter(|u| u.prompt_tokens > 0 || u.completion_tokens > 0) else {
        return;
    };
    let per_turn = u.prompt_tokens + u.completion_tokens;
    let call = TokenUsage {
        model: model.clone(),
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        cache_read_tokens: u.cache_read_tokens,
        cache_write_tokens: u.cache_write_tokens,
        reasoning_tokens: u.reasoning_tokens,
        context_window,
        per_turn_token: per_turn,
        response_id: response_id.to_owned(),
    };
    metrics.token_usages.push(call);
    let acc = metrics
        .accumulated_token_usage
        .get_or_insert_with(|| zero_usage(&model));
    acc.prompt_tokens += u.prompt_tokens;
    acc.completion_tokens += u.completion_tokens;
    acc.cache_read_tokens += u.cache_read_tokens;
    acc.cache_write_tokens += u.cache_write_tokens;
    acc.reasoning_tokens += u.reasoning_tokens;
    acc.context_window = acc.context_window.max(context_window);
    acc.per_turn_token = per_turn;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            ..Usage::default()
        }
    }

    #[test]
    fn accumulates_like_the_reference() {
        let mut m = new_metrics("openai/x");
        record(&mut m, 0.5, "r1", Some(0.25), Some(&usage(10, 5)), 1000);
        record(&mut m, 0.25, "r2", Some(0.0), Some(&usage(20, 1)), 500);
        record(&mut m, 0.1, "r3", None, Some(&usage(0, 0)), 2000);
        assert_eq!(m.response_latencies.len(), 3);
        assert_eq!(m.costs.len(), 1);
        assert!((m.accumulated_cost - 0.25).abs() < 1e-12);
        assert_eq!(m.token_usages.len(), 2);
        let acc = m.accumulated_token_usage.unwrap();
        assert_eq!((acc.prompt_tokens, acc.completion_tokens), (30, 6));
        assert_eq!(acc.context_window, 1000);
        assert_eq!(acc.per_turn_token, 21);
        assert_eq!(acc.response_id, "");
        assert_eq!(m.token_usages[1].per_turn_token, 21);
    }

    #[test]
    fn cost_sources_in_order() {
        let u = Usage {
            prompt_tokens: 1000,
            completion_tokens: 100,
            cache_read_tokens: 400,
            ..Usage::default()
        };
        let table = super::super::model::lookup("gpt-4o");
        let header = Pricing {
            header_cost: Some(0.5),
            custom: Some((1.0, 1.0)),
            table,
        };
        assert_eq!(cost(&header, Some(&u)), Some(0.5));
        let custom = Pricing {
            header_cost: None,
            ..header
        };
        assert_eq!(cost(&custom, Some(&u)), Some(1100.0));
        let by_table = Pricing {
            custom: None,
            ..custom
        };
        let expected = 600.0 * 2.5e-6 + 400.0 * 1.25e-6 + 100.0 * 1e-5;
        let got = cost(&by_table, Some(&u)).unwrap();
        assert!((got - expected).abs() < 1e-12);
        let none = Pricing {
            table: None,
            ..by_table
        };
        assert_eq!(cost(&none, Some(&u)), None);
    }
}
