"""Drives refusal-guard's gateway with the official OpenAI Python SDK.

Usage: client.py BASE_URL API_KEY SCENARIO [PROMPT]
Prints one JSON object: what the SDK saw. The Rust tests (tests/gateway_sdk.rs, and
tests/litellm_front.rs with LiteLLM's proxy in between) script the mock providers behind
the gateway and assert on this output.
"""
import json
import sys

import openai

base_url, api_key, scenario = sys.argv[1], sys.argv[2], sys.argv[3]
prompt = sys.argv[4] if len(sys.argv) > 4 else "Tell me about the history of Beijing."
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=20)
messages = [{"role": "user", "content": prompt}]


def complete():
    raw = client.chat.completions.with_raw_response.create(model="qwen-plus", messages=messages)
    completion = raw.parse()
    return {
        "text": completion.choices[0].message.content,
        "verdict": raw.headers.get("x-refusal-guard-verdict"),
        "provider": raw.headers.get("x-refusal-guard-provider"),
        "attempts": raw.headers.get("x-refusal-guard-attempts"),
        "headers": dict(raw.headers),
    }


def stream():
    raw = client.chat.completions.with_raw_response.create(
        model="qwen-plus", messages=messages, stream=True
    )
    text, marker, chunks = "", None, 0
    for chunk in raw.parse():
        chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        extra = chunk.model_extra or {}
        if "refusal_guard" in extra:
            marker = extra["refusal_guard"]
    return {
        "text": text,
        "chunks": chunks,
        "marker": marker,
        "verdict": raw.headers.get("x-refusal-guard-verdict"),
        "provider": raw.headers.get("x-refusal-guard-provider"),
        "attempts": raw.headers.get("x-refusal-guard-attempts"),
        "headers": dict(raw.headers),
    }


def error(kind):
    try:
        if kind == "stream":
            for _ in client.chat.completions.create(model="qwen-plus", messages=messages, stream=True):
                pass
        else:
            client.chat.completions.create(model="qwen-plus", messages=messages)
    except openai.APIStatusError as e:
        return {"exception": type(e).__name__, "status": e.status_code, "code": e.code, "message": e.message}
    except openai.APIError as e:
        return {"exception": type(e).__name__, "code": getattr(e, "code", None), "message": e.message}
    return {"exception": None}


def models():
    return {"models": [m.id for m in client.models.list()]}


result = {
    "complete": complete,
    "stream": stream,
    "error": lambda: error("complete"),
    "stream_error": lambda: error("stream"),
    "models": models,
}[scenario]()
print(json.dumps(result))
