//! End to end with the official OpenAI Python SDK as the client, the gateway in the
//! middle, and mock providers upstream.

use crate::common;

use common::{sdk, start};
use refusal_guard::mock::{split_pieces, Script};
use refusal_guard::wire::ModerationStage;

const ANSWER: &str =
    "Beijing has been a capital for most of the last eight centuries, from the Yuan dynasty on.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_and_streamed_answers_pass_with_verdict_headers() {
    let gw = start("").await;
    gw.primary.set_default(Script::answer(ANSWER));
    let r = sdk(&gw.base_url, "sk-test", "complete").await;
    assert_eq!(r["text"], ANSWER);
    assert_eq!(r["verdict"], "answer");
    assert_eq!(r["provider"], "primary");
    assert_eq!(r["attempts"], "1");

    let r = sdk(&gw.base_url, "sk-test", "stream").await;
    assert_eq!(r["text"], ANSWER);
    assert_eq!(r["verdict"], "answer");
    assert_eq!(r["marker"]["verdict"], "answer");
    assert!(r["chunks"].as_u64().unwrap() > 10, "streamed chunk by chunk: {r}");
    assert_eq!(gw.fallback.requests().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderation_400_is_rerouted() {
    let gw = start("").await;
    gw.primary
        .set_default(Script::moderation_error(ModerationStage::Input));
    gw.fallback.set_default(Script::answer(ANSWER));
    let r = sdk(&gw.base_url, "sk-test", "complete").await;
    assert_eq!(r["text"], ANSWER);
    assert_eq!(r["provider"], "fallback");
    assert_eq!(r["attempts"], "2");
    assert_eq!(gw.primary.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_way_is_continued_on_the_fallback() {
    let gw = start("").await;
    let text = "In the thirteenth century Kublai Khan made Dadu his capital; the Ming rebuilt it as Beijing, \
                the northern capital, and the Forbidden City was finished in 1420 after fourteen years of work.";
    let pieces = split_pieces(text);
    assert!(pieces.len() > 30);
    gw.primary.set_default(Script::answer(text).error_after(20));
    gw.fallback.set_default(Script::chunks(pieces[20..].to_vec()));
    let r = sdk(&gw.base_url, "sk-test", "stream").await;
    assert_eq!(
        r["text"], text,
        "primary prefix + fallback continuation, nothing lost or repeated"
    );
    assert_eq!(r["marker"]["rerouted"], true);
    assert_eq!(r["marker"]["continued"], true);
    let asked = gw.fallback.request(0).unwrap().chat_request().unwrap();
    let released: String = pieces[..20].concat();
    assert_eq!(asked.messages[1].content.as_ref().unwrap().text(), released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecoverable_error_is_the_sdks_typed_exception() {
    let gw = start("").await;
    gw.primary
        .set_default(Script::moderation_error(ModerationStage::Input));
    gw.fallback
        .set_default(Script::moderation_error(ModerationStage::Input));
    for scenario in ["error", "stream_error"] {
        let r = sdk(&gw.base_url, "sk-test", scenario).await;
        assert_eq!(r["exception"], "BadRequestError", "{scenario}: {r}");
        assert_eq!(r["status"], 400);
        assert_eq!(r["code"], "data_inspection_failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_keys_are_enforced_and_models_listed() {
    std::env::set_var("RG_TEST_GATEWAY_KEYS_SDK", "sk-good-1, sk-good-2");
    let gw = start("[server]\napi_keys_env = \"RG_TEST_GATEWAY_KEYS_SDK\"").await;
    gw.primary.set_default(Script::answer(ANSWER));
    let r = sdk(&gw.base_url, "sk-wrong", "error").await;
    assert_eq!(r["exception"], "AuthenticationError");
    assert_eq!(r["status"], 401);
    let r = sdk(&gw.base_url, "sk-good-2", "complete").await;
    assert_eq!(r["text"], ANSWER);
    let r = sdk(&gw.base_url, "sk-good-1", "models").await;
    assert_eq!(
        r["models"],
        serde_json::json!([]),
        "a '*' route lists no model names"
    );
}
