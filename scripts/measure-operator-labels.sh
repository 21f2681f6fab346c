#!/usr/bin/env bash
# What an operator's own labels buy (docs/operator-labels.md, "What it buys, measured").
#
#   bash scripts/measure-operator-labels.sh SOURCE FILE N OUT
#   e.g. bash scripts/measure-operator-labels.sh gptfuzz gptfuzz_responses.jsonl 200 /tmp/op
#
# One shared response file stands for a gateway's traffic that the models never read:
#   1. `train --encoder none --response-exclude SOURCE`: the embedded default without it
#      (the baseline);
#   2. the file with its labels taken away is audited by that baseline, which writes a
#      review queue of N answers (`audit --review`);
#   3. a simulated reviewer fills in the queue's labels from the file's own (a person would
#      label them by hand); N answers drawn at random (seeded) are labeled too, to compare
#      the queue's choice with none;
#   4. `train` again on the shipped data without SOURCE plus each labeled set;
#   5. `eval` scores every model on the rest of the file: the answers neither set holds.
# Three trainings of about six minutes each on one core (the last two at once). Needs the binary
# (`cargo build --release`) and ../shared/datasets. The JSON handling below only moves
# fields between files; the choosing, training and scoring are the project's own commands.
set -euo pipefail

if [ $# -ne 4 ]; then
  sed -n 2,5p "$0" >&2
  exit 2
fi
source_name=$1
file=$2
n=$3
out=$4
repo=$(cd "$(dirname "$0")/.." && pwd)
datasets=${REFUSAL_GUARD_DATASETS:-$repo/../shared/datasets}
gold=$datasets/$file
bin=$repo/target/release/refusal-guard
[ -f "$gold" ] || { echo "no $gold" >&2; exit 1; }
[ -x "$bin" ] || { echo "no $bin: run cargo build --release first" >&2; exit 1; }
export HF_HOME=${HF_HOME:-$repo/.cache/hf}
o=$out/$source_name-$n
mkdir -p "$o/baseline" "$o/queue" "$o/random"

train() { # name, extra args...
  local name=$1
  shift
  (cd "$repo" && "$bin" train --encoder none --shipped --response-exclude "$source_name" "$@" \
    --out "$o/$name/model.safetensors" --combiner-out "$o/$name/combiner.safetensors" \
    --report "$o/$name/loso.md") >"$o/$name.log" 2>&1
}

[ -f "$o/baseline/combiner.safetensors" ] || train baseline

python3 - "$gold" "$o/traffic.jsonl" <<'PY'
import json, sys
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        r["label"] = None
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
PY
"$bin" audit --tier "ngram:$o/baseline/model.safetensors" --combiner "$o/baseline/combiner.safetensors" \
  --quiet --review "$o/queue.jsonl" --review-size "$n" "$o/traffic.jsonl"

python3 - "$gold" "$o" "$n" <<'PY'
import json, random, sys
gold_file, o, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(l) for l in open(gold_file)]
label = {r["id"]: r["label"] for r in rows}
queue = [json.loads(l) for l in open(o + "/queue.jsonl")]
with open(o + "/queue-labeled.jsonl", "w") as out:
    for q in queue:
        q["label"] = label[q["id"]]
        out.write(json.dumps(q, ensure_ascii=False) + "\n")
drawn = random.Random(7).sample(rows, n)
with open(o + "/random-labeled.jsonl", "w") as out:
    for r in drawn:
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
used = {q["id"] for q in queue} | {r["id"] for r in drawn}
rest = [r for r in rows if r["id"] not in used]
with open(o + "/rest.jsonl", "w") as out:
    for r in rest:
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
print(f"{len(queue)} queued, {len(drawn)} drawn at random, {len(rest)} left to score")
PY

# The baseline and the random draw do not depend on the queue: kept from an earlier run
# into the same OUT (delete OUT to start over); the queue's model is always trained anew.
train queue --responses "$o/queue-labeled.jsonl" &
[ -f "$o/random/combiner.safetensors" ] || train random --responses "$o/random-labeled.jsonl" &
wait

for name in baseline queue random; do
  "$bin" eval --tier "ngram:$o/$name/model.safetensors" --combiner "$o/$name/combiner.safetensors" \
    "$o/rest.jsonl" >"$o/eval-$name.md"
done
"$bin" eval --tier none "$o/rest.jsonl" >"$o/eval-shipped.md"
echo "scores in $o/eval-{baseline,queue,random,shipped}.md"
