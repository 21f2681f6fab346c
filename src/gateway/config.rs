//! `gateway.toml`: providers, routes, the verdict policy, the hold-back window.
//!
//! Everything has a default except the providers and routes. API keys are never in the
//! file: each provider names the environment variable that holds its key, so the file
//! can be committed and reviewed. Unknown keys are errors, so a typo does not silently
//! fall back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;
use crate::layer::{AskLogprobs, Prices};
use crate::observe::VerdictLogConfig;
use crate::verdict::VerdictSet;

/// The whole gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub guard: GuardConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Pre-routing of requests the primary is known to over-block.
    #[serde(default)]
    pub preroute: PreRouteSection,
    /// Logs and traces (see [`crate::observe`]).
    #[serde(default)]
    pub logging: crate::observe::LoggingConfig,
    /// Providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Routes, matched by model name in order; `model = "*"` matches every model.
    pub routes: Vec<RouteConfig>,
    /// The verdict log (off unless the section is present).
    #[serde(default)]
    pub verdict_log: Option<VerdictLogConfig>,
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Requests in flight at once; more are answered 503 at once rather than queued.
    pub max_concurrency: usize,
    /// An environment variable holding the gateway's own client keys, comma-separated.
    /// Unset means no client authentication.
    pub api_keys_env: Option<String>,
    /// On shutdown, how long open streams may run before they are cut.
    pub shutdown_grace_secs: u64,
    /// A request's headers must arrive within this long of its first byte.
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout_ms: u64,
    /// Open client connections at most (keep it below `ulimit -n`); at the cap the
    /// gateway stops accepting until one closes.
    pub max_connections: usize,
}

impl ServerConfig {
    /// The limits of [`crate::gateway::edge`].
    pub fn edge_limits(&self) -> crate::gateway::edge::EdgeLimits {
        crate::gateway::edge::EdgeLimits {
            header_read_timeout: std::time::Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: std::time::Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 4 << 20,
            max_concurrency: 1024,
            api_keys_env: None,
            shutdown_grace_secs: 30,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 4096,
        }
    }
}

/// The refusal guard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    pub window_tokens: usize,
    /// Tokens held past the window when it ends on a refusal still forming
    /// ([`crate::layer::RefusalGuardLayer::window_extension`]); 0 turns it off.
    pub window_extension_tokens: usize,
    pub window_ms: u64,
    pub decide_confidence: f32,
    /// Attach verdicts but never stop or re-route anything.
    pub observe_only: bool,
    /// Judge each request's prompt while the provider answers, so a refusal's re-route
    /// does not wait for it; costs that judgment's CPU on every request
    /// ([`crate::layer::RefusalGuardLayer::judge_prompts_early`]). Default off.
    pub judge_prompts_early: bool,
    /// Model tiers of the verdict (as `eval --tier`): `e5`, `e5:prompts` (requests only),
    /// `e5:wide` (answers over the wide escalation band), `ngram:PATH`, `e5:PATH` (retrained models), `guard`, … Empty (the default): the best installed tier; `["none"]`:
    /// the embedded default alone.
    pub tiers: Vec<String>,
    /// How evidence becomes a verdict (as `eval --combiner`): `learned` (the shipped
    /// combiner, the default), `rules` (the hand-set baseline), or the path of a combiner
    /// written by `refusal-guard train --combiner-out`: the one trained with a retrained
    /// `ngram:PATH` model (docs/operator-labels.md), since a combiner reads its own heads.
    pub combiner: String,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            window_tokens: crate::layer::guard::DEFAULT_WINDOW_TOKENS,
            window_extension_tokens: crate::layer::guard::DEFAULT_WINDOW_EXTENSION,
            window_ms: crate::layer::guard::DEFAULT_WINDOW_DURATION.as_millis() as u64,
            decide_confidence: crate::layer::guard::DEFAULT_DECIDE_CONFIDENCE,
            observe_only: false,
            judge_prompts_early: false,
            tiers: Vec::new(),
            combiner: "learned".into(),
        }
    }
}

/// What is re-routed, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Verdict classes that move a request to the next provider. Adding
    /// `safety_refusal` sends requests one provider judged harmful to another.
    pub reroute: VerdictSet,
    pub continue_mid_stream: bool,
    /// Re-ask the same provider once when a refusal was entered below this probability.
    pub resample_below: Option<f64>,
    /// Llama Guard 3 hazard categories (`"S6"` or `"Specialized Advice"`) opted in for
    /// re-routing: a safety refusal whose categories are all listed is re-routed. Empty by
    /// default; an unknown name, or all fourteen at once, is a configuration error.
    pub reroute_categories: Vec<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            reroute: VerdictSet::policy_driven(),
            continue_mid_stream: true,
            resample_below: None,
            reroute_categories: Vec::new(),
        }
    }
}

/// `[preroute]`: a request the primary over-blocked before (the same or a near-identical
/// prompt, or a later turn of a conversation that tripped input moderation) goes straight
/// to the fallback that answered it. Never a request whose prompt is judged harmful (see
/// [`crate::layer::reroute::preroute`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreRouteSection {
    /// On by default: it only skips a primary that already refused the request as benign.
    pub enabled: bool,
    /// Prompts and conversations remembered at most (least recently used go first).
    pub capacity: usize,
    /// How long a remembered over-block is trusted, in seconds.
    pub ttl_secs: u64,
    /// Cosine similarity (0..=1] of prompt embeddings from which two prompts count as the
    /// same request.
    pub threshold: f32,
    /// A prompt judged harmful with this probability or more is never pre-routed [0, 1].
    pub max_harm: f32,
}

impl Default for PreRouteSection {
    fn default() -> Self {
        let d = crate::layer::PreRouteConfig::default();
        PreRouteSection {
            enabled: true,
            capacity: d.capacity,
            ttl_secs: d.ttl.as_secs(),
            threshold: d.threshold,
            max_harm: d.max_harm,
        }
    }
}

impl PreRouteSection {
    /// The store's configuration, `None` when pre-routing is off.
    pub fn store_config(&self) -> Option<crate::layer::PreRouteConfig> {
        self.enabled.then(|| crate::layer::PreRouteConfig {
            capacity: self.capacity,
            ttl: std::time::Duration::from_secs(self.ttl_secs),
            threshold: self.threshold,
            max_harm: self.max_harm,
        })
    }

    fn check(&self) -> Result<(), Error> {
        let bad = |detail: String| Err(Error::invalid("configuration", format!("[preroute] {detail}")));
        if !self.enabled {
            return Ok(());
        }
        if self.capacity == 0 || self.ttl_secs == 0 {
            return bad(format!(
                "capacity = {} and ttl_secs = {} must be at least 1 (set enabled = false to turn it off)",
                self.capacity, self.ttl_secs
            ));
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return bad(format!("threshold = {} is outside (0, 1]", self.threshold));
        }
        if !(0.0..=1.0).contains(&self.max_harm) {
            return bad(format!("max_harm = {} is outside [0, 1]", self.max_harm));
        }
        Ok(())
    }
}

/// One upstream provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The OpenAI-compatible base URL (the part before `/chat/completions`).
    pub base_url: String,
    /// The environment variable that holds the API key; unset means no key is sent.
    pub api_key_env: Option<String>,
    /// The caller's model names mapped to this provider's (`"*"` maps all others).
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_first_token_ms")]
    pub first_token_timeout_ms: u64,
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_retries")]
    pub max_retries: usize,
    /// The longest `Retry-After` (on a 429 or 503) a retry waits out; a provider asking for
    /// longer is not retried, and its routes fail over at once. Default 2000.
    #[serde(default = "default_retry_max_wait_ms")]
    pub retry_max_wait_ms: u64,
    /// The largest complete (non-streamed) answer or error body accepted from this
    /// provider; larger ones fail as `upstream_too_large` without being buffered whole.
    #[serde(default = "default_response_bytes")]
    pub max_response_bytes: usize,
    /// The most bytes one stream from this provider may carry; past it the stream ends
    /// with an `upstream_too_large` error event and the upstream connection is dropped.
    #[serde(default = "default_stream_bytes")]
    pub max_stream_bytes: usize,
    pub prices: Option<Prices>,
    /// Ask this provider for logprobs the client did not request, for the guard's checks
    /// only, and hide them from the client. Unset: on for providers known to accept them
    /// (DashScope, OpenAI, DeepSeek, by base URL), off for others.
    #[serde(default)]
    pub ask_logprobs: Option<bool>,
    /// Alternatives per token asked for when the guard asks (`top_logprobs`, at most 20).
    #[serde(default = "default_top_logprobs")]
    pub ask_top_logprobs: u32,
    /// Failed requests in a row (connection, deadline, 429 or 5xx, after the retries) after
    /// which this provider is not asked for `cooldown_ms`: its routes fail over at once
    /// instead of waiting for it. 0 turns it off. Default 5.
    #[serde(default = "default_cooldown_after")]
    pub cooldown_after_failures: u32,
    /// How long a failing provider is skipped before one request probes it again.
    /// Default 10000.
    #[serde(default = "default_cooldown_ms")]
    pub cooldown_ms: u64,
    /// A failure with `Retry-After` skips the provider that long at once (unless
    /// `cooldown_after_failures` is 0), at most this long (a daily quota's pause is cut to
    /// it, then a probe asks again). Default 300000.
    #[serde(default = "default_cooldown_max_retry_after_ms")]
    pub cooldown_max_retry_after_ms: u64,
    /// Also skip this provider for `cooldown_ms` when at least this share of its last
    /// `cooldown_failure_window` requests failed, in a row or not: a provider failing every
    /// other request never fails five in a row. A number in (0, 1]. Default 0.5.
    #[serde(default = "default_cooldown_failure_share")]
    pub cooldown_failure_share: f32,
    /// The requests that share is counted over (read once that many have settled since the
    /// last cooldown), at most 64; 0 turns the share off. Default 20.
    #[serde(default = "default_cooldown_failure_window")]
    pub cooldown_failure_window: u32,
}

impl ProviderConfig {
    /// The guard's logprob option for this provider (named `name`).
    pub fn logprobs(&self, name: &str) -> AskLogprobs {
        let on = self
            .ask_logprobs
            .unwrap_or_else(|| crate::provider::accepts_logprobs(&self.base_url));
        let ask = if on {
            AskLogprobs::top(self.ask_top_logprobs)
        } else {
            AskLogprobs::off()
        };
        ask.provider(name)
    }
}

fn default_cooldown_after() -> u32 {
    crate::layer::cooldown::DEFAULT_AFTER_FAILURES
}
fn default_cooldown_ms() -> u64 {
    crate::layer::cooldown::DEFAULT_COOLDOWN.as_millis() as u64
}
fn default_cooldown_failure_share() -> f32 {
    crate::layer::cooldown::DEFAULT_FAILURE_SHARE
}
fn default_cooldown_failure_window() -> u32 {
    crate::layer::cooldown::DEFAULT_FAILURE_WINDOW
}
fn default_cooldown_max_retry_after_ms() -> u64 {
    crate::layer::cooldown::DEFAULT_MAX_RETRY_AFTER.as_millis() as u64
}
fn default_retry_max_wait_ms() -> u64 {
    crate::layer::failover::DEFAULT_MAX_RETRY_WAIT.as_millis() as u64
}

fn default_top_logprobs() -> u32 {
    crate::layer::logprobs::DEFAULT_TOP_LOGPROBS
}

fn default_response_bytes() -> usize {
    crate::provider::DEFAULT_BODY_LIMIT
}
fn default_stream_bytes() -> usize {
    crate::wire::sse::DEFAULT_STREAM_BYTE_LIMIT
}

fn default_first_token_ms() -> u64 {
    30_000
}
fn default_connect_ms() -> u64 {
    5_000
}
fn default_retries() -> usize {
    2
}

/// Which providers serve a model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The model name callers use, or `*`.
    pub model: String,
    pub primary: String,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// The whole request's budget, stream included.
    #[serde(default = "default_total_ms")]
    pub total_timeout_ms: u64,
}

fn default_total_ms() -> u64 {
    300_000
}

impl GatewayConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid("configuration", format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| match e {
            Error::Invalid { what, detail } => Error::Invalid {
                what,
                detail: format!("{}: {detail}", path.display()),
            },
            other => other,
        })
    }

    /// Parses and checks a configuration text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let config: GatewayConfig =
            toml::from_str(text).map_err(|e| Error::invalid("configuration", e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), Error> {
        self.logging.check()?;
        self.preroute.check()?;
        crate::layer::reroute::hazard_codes(&self.policy.reroute_categories)
            .map_err(|e| Error::invalid("configuration", format!("[policy] {e}")))?;
        let s = &self.server;
        // Zero is never meant: a body limit of 0 starts a gateway that answers every
        // request 413, and a concurrency of 0 reads as "unlimited" but would be one.
        for (name, value) in [
            ("max_body_bytes", s.max_body_bytes as u64),
            ("max_concurrency", s.max_concurrency as u64),
            ("header_read_timeout_ms", s.header_read_timeout_ms),
            ("idle_timeout_ms", s.idle_timeout_ms),
            ("max_connections", s.max_connections as u64),
        ] {
            if value == 0 {
                return Err(Error::invalid(
                    "configuration",
                    format!("server.{name} is 0: it must be at least 1"),
                ));
            }
        }
        if self.routes.is_empty() {
            return Err(Error::invalid(
                "configuration",
                "no [[routes]]: the gateway would serve nothing",
            ));
        }
        for route in &self.routes {
            for name in std::iter::once(&route.primary).chain(&route.fallbacks) {
                if !self.providers.contains_key(name) {
                    return Err(Error::invalid(
                        "configuration",
                        format!(
                            "route for model {:?} names provider {name:?}, which [providers] does not define",
                            route.model
                        ),
                    ));
                }
            }
        }
        if let Some(log) = &self.verdict_log {
            log.check()?;
        }
        for (name, p) in &self.providers {
            if p.ask_top_logprobs > crate::layer::logprobs::MAX_TOP_LOGPROBS {
                return Err(Error::invalid(
                    "configuration",
                    format!(
                        "provider {name:?}: ask_top_logprobs = {} is above the providers' limit of {}",
                        p.ask_top_logprobs,
                        crate::layer::logprobs::MAX_TOP_LOGPROBS
                    ),
                ));
            }
            if !(p.cooldown_failure_share > 0.0 && p.cooldown_failure_share <= 1.0) {
                return Err(Error::invalid(
                    "configuration",
                    format!(
                        "provider {name:?}: cooldown_failure_share = {} is not a share of requests in (0, 1]",
                        p.cooldown_failure_share
                    ),
                ));
            }
            if p.cooldown_failure_window > crate::layer::cooldown::MAX_FAILURE_WINDOW {
                return Err(Error::invalid(
                    "configuration",
                    format!(
                        "provider {name:?}: cooldown_failure_window = {} is above the most kept, {}",
                        p.cooldown_failure_window,
                        crate::layer::cooldown::MAX_FAILURE_WINDOW
                    ),
                ));
            }
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                return Err(Error::invalid(
                    "configuration",
                    format!(
                        "provider {name:?}: base_url {:?} is not an http(s) URL",
                        p.base_url
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The route for a model: the first exact match, else the first `*`.
    pub fn route_for(&self, model: &str) -> Option<&RouteConfig> {
        self.routes
            .iter()
            .find(|r| r.model == model)
            .or_else(|| self.routes.iter().find(|r| r.model == "*"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[server]
listen = "127.0.0.1:9000"

[providers.qwen]
base_url = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
api_key_env = "DASHSCOPE_API_KEY"
prices = { input = 0.4, output = 1.2 }

[providers.backup]
base_url = "http://127.0.0.1:9001/v1"
models = { "*" = "gpt-4o-mini" }

[[routes]]
model = "qwen-plus"
primary = "qwen"
fallbacks = ["backup"]
"#;

    #[test]
    fn sample_parses_with_defaults() {
        let c = GatewayConfig::parse(SAMPLE).unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.guard.window_tokens, 16);
        assert!(c
            .policy
            .reroute
            .contains(crate::verdict::VerdictClass::PolicyRefusal));
        assert!(!c
            .policy
            .reroute
            .contains(crate::verdict::VerdictClass::SafetyRefusal));
        assert_eq!(c.route_for("qwen-plus").unwrap().fallbacks, vec!["backup"]);
        assert!(c.route_for("other").is_none());
        assert!(c.verdict_log.is_none(), "the verdict log is opt-in");
    }

    #[test]
    fn logprobs_are_asked_of_known_providers_by_default() {
        let c = GatewayConfig::parse(SAMPLE).unwrap();
        let qwen = c.providers["qwen"].logprobs("qwen");
        assert_eq!(qwen.top_logprobs(), Some(5), "DashScope accepts them");
        assert!(
            !c.providers["backup"].logprobs("backup").is_on(),
            "unknown host: off"
        );
        let off = SAMPLE.replace(
            "api_key_env = \"DASHSCOPE_API_KEY\"",
            "api_key_env = \"DASHSCOPE_API_KEY\"\nask_logprobs = false",
        );
        let c = GatewayConfig::parse(&off).unwrap();
        assert!(!c.providers["qwen"].logprobs("qwen").is_on());
        let on = SAMPLE.replace(
            "models = {",
            "ask_logprobs = true\nask_top_logprobs = 3\nmodels = {",
        );
        let c = GatewayConfig::parse(&on).unwrap();
        assert_eq!(c.providers["backup"].logprobs("backup").top_logprobs(), Some(3));
    }

    #[test]
    fn the_repository_sample_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml");
        let c = GatewayConfig::load(std::path::Path::new(path)).unwrap();
        assert_eq!(c.route_for("qwen-plus").unwrap().primary, "dashscope-intl");
        assert_eq!(
            c.providers["openrouter"].models["qwen-plus"],
            "openai/gpt-4o-mini"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let bad = SAMPLE.replace("fallbacks = [\"backup\"]", "fallbacks = [\"missing\"]");
        let e = GatewayConfig::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("\"missing\""), "{e}");
        let typo = SAMPLE.replace("[server]", "[server]\nlisten_port = 1");
        let e = GatewayConfig::parse(&typo).unwrap_err().to_string();
        assert!(e.contains("listen_port"), "{e}");
        let top = SAMPLE.replace("models = {", "ask_top_logprobs = 50\nmodels = {");
        let e = GatewayConfig::parse(&top).unwrap_err().to_string();
        assert!(e.contains("ask_top_logprobs") && e.contains("\"backup\""), "{e}");
        for (key, value) in [
            ("cooldown_failure_share", "0.0"),
            ("cooldown_failure_share", "1.5"),
            ("cooldown_failure_share", "nan"),
            ("cooldown_failure_window", "65"),
        ] {
            let bad = SAMPLE.replace("models = {", &format!("{key} = {value}\nmodels = {{"));
            let e = GatewayConfig::parse(&bad).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains("\"backup\""),
                "{key} = {value}: {e}"
            );
        }
        let fine = SAMPLE.replace(
            "models = {",
            "cooldown_failure_share = 1.0\ncooldown_failure_window = 0\nmodels = {",
        );
        let c = GatewayConfig::parse(&fine).unwrap();
        assert_eq!(c.providers["backup"].cooldown_failure_window, 0);
        let log = format!("[verdict_log]\ndir = \"logs\"\nmax_file_bytes = 0\n{SAMPLE}");
        let e = GatewayConfig::parse(&log).unwrap_err().to_string();
        assert!(e.contains("max_file_bytes"), "{e}");
        for key in ["max_body_bytes", "max_concurrency"] {
            let zero = SAMPLE.replace("[server]", &format!("[server]\n{key} = 0"));
            let e = GatewayConfig::parse(&zero).unwrap_err().to_string();
            assert!(e.contains(&format!("server.{key} is 0")), "{key}: {e}");
        }
        let reroute = format!("[policy]\nreroute = [\"policy_refusal\", \"bogus\"]\n{SAMPLE}");
        let e = GatewayConfig::parse(&reroute).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn hazard_categories_are_opted_in_by_name_and_checked() {
        let c = GatewayConfig::parse(SAMPLE).unwrap();
        assert!(c.policy.reroute_categories.is_empty(), "none by default");
        let ok = format!("[policy]\nreroute_categories = [\"S6\", \"privacy\"]\n{SAMPLE}");
        let c = GatewayConfig::parse(&ok).unwrap();
        assert_eq!(c.policy.reroute_categories, vec!["S6", "privacy"]);
        let unknown = format!("[policy]\nreroute_categories = [\"S6\", \"S15\"]\n{SAMPLE}");
        let e = GatewayConfig::parse(&unknown).unwrap_err().to_string();
        assert!(e.contains("\"S15\"") && e.contains("reroute_categories"), "{e}");
        let all: Vec<String> = (1..=14).map(|i| format!("\"S{i}\"")).collect();
        let all = format!("[policy]\nreroute_categories = [{}]\n{SAMPLE}", all.join(", "));
        let e = GatewayConfig::parse(&all).unwrap_err().to_string();
        assert!(e.contains("all 14 hazard categories"), "{e}");
    }

    #[test]
    fn preroute_defaults_on_and_checks_its_bounds() {
        let c = GatewayConfig::parse(SAMPLE).unwrap();
        let d = crate::layer::PreRouteConfig::default();
        assert_eq!(c.preroute.store_config(), Some(d));
        let off = format!("[preroute]\nenabled = false\n{SAMPLE}");
        assert_eq!(GatewayConfig::parse(&off).unwrap().preroute.store_config(), None);
        for (key, value) in [
            ("threshold", "1.5"),
            ("threshold", "0.0"),
            ("max_harm", "-0.1"),
            ("capacity", "0"),
            ("ttl_secs", "0"),
        ] {
            let bad = format!("[preroute]\n{key} = {value}\n{SAMPLE}");
            let e = GatewayConfig::parse(&bad).unwrap_err().to_string();
            assert!(e.contains("[preroute]") && e.contains(key), "{key}: {e}");
        }
    }
}
