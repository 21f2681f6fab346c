#!/usr/bin/env bash
# Gateway overhead on loopback, repeatable: refusal-guard's gateway vs the mock provider
# directly at fixed request rates, then the same against LiteLLM's proxy in front of the
# same mock at a rate LiteLLM can sustain. Prints the tables of benches/gateway_overhead.rs.
#   bash scripts/bench-gateway.sh            # both parts
#   SKIP_LITELLM=1 bash scripts/bench-gateway.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${RG_BENCH_SECS:-5}
mock_port=${RG_BENCH_MOCK_PORT:-18080}

echo "== refusal-guard vs direct"
RG_BENCH_SECS=$secs RG_BENCH_RATES=${RG_BENCH_RATES:-500,1000,2000} RG_BENCH_MOCK_PORT=$mock_port \
  cargo bench --bench gateway_overhead

[ -n "${SKIP_LITELLM:-}" ] && exit 0

bash scripts/setup-litellm.sh
venv=.cache/venv-litellm
cfg=$(mktemp -d)/litellm.yaml
cat > "$cfg" <<YAML
model_list:
  - model_name: qwen-plus
    litellm_params:
      model: openai/qwen-plus
      api_base: http://127.0.0.1:$mock_port/v1
      api_key: sk-mock
litellm_settings:
  telemetry: false
YAML
log=$(mktemp)
LITELLM_MASTER_KEY=sk-bench "$venv/bin/litellm" --config "$cfg" --host 127.0.0.1 --port 4000 --num_workers 1 >"$log" 2>&1 &
litellm_pid=$!
trap 'kill $litellm_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fs http://127.0.0.1:4000/health/liveliness >/dev/null 2>&1 && break
  sleep 1
done
curl -fs http://127.0.0.1:4000/health/liveliness >/dev/null || { echo "LiteLLM did not start:"; tail -20 "$log"; exit 1; }
echo "== refusal-guard and LiteLLM vs direct, at rates LiteLLM sustains"
RG_BENCH_SECS=$secs RG_BENCH_RATES=${RG_BENCH_LITELLM_RATES:-20,50} RG_BENCH_MOCK_PORT=$mock_port \
  RG_BENCH_OTHER=litellm=http://127.0.0.1:4000/v1 cargo bench --bench gateway_overhead
