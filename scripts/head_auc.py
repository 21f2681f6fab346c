"""How well each model reads answers it was not trained on, before any combiner: the n-gram
answer head and e5's answer head, each source's whole answers judged by heads trained on the
other sources.

Why: the issue asks for the embedded default to learn from the encoder (distillation). That
only helps where the encoder, out of source, reads answers better than the n-gram model, and
this says where: per source and language, the ROC AUC of each head's non-answer probability
(1 - P(answer)), its F1 at 0.5, and its best F1 over thresholds 0.05 to 0.95 (an oracle
threshold: a ceiling for comparing the two heads, not a figure to quote as a verdict's).

The rows come from `refusal-guard train --stack-out FILE` with `--encoder-cap 1000000`, so
that every row has the encoder's out-of-source reading (with the default cap, only the capped
subset has one, and only those rows are read). No dependencies beyond Python 3:

    python3 scripts/head_auc.py /tmp/U/stack.jsonl

The team's files are pooled per language. Figures from a run are in
models/combiner/README.md.
"""

import argparse
import json
import math
import sys
from collections import defaultdict


def read(path):
    """Whole answers with an encoder reading: (group, is_non_answer, n-gram, encoder)."""
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        sys.exit(f"{path}: {e} (write it with `refusal-guard train --stack-out {path}`)")
    with f:
        header = json.loads(f.readline())
        names = header.get("feature_names", [])
        try:
            ngram, encoder, present = (names.index(n) for n in ("ngram.answer", "encoder.answer", "encoder.present"))
        except ValueError:
            sys.exit(f"{path}: the header names no n-gram and encoder readings; is it a `train --stack-out` file?")
        rows = []
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            x = r.get("features_with_encoder")
            if r["window"] or not x or x[present] != 1.0:
                continue
            source = "team" if r["source"].startswith("team") else r["source"]
            rows.append(((source, r["lang"]), r["label"] != "answer", 1 - math.exp(x[ngram]), 1 - math.exp(x[encoder])))
    return rows


def roc_auc(pos, neg):
    """The chance a non-answer reads higher than an answer (ties count half)."""
    ranked = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += (i + j + 1) / 2 * sum(1 for t in range(i, j) if ranked[t][1])
        i = j
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def f1_at(pairs, threshold):
    tp = sum(1 for y, p in pairs if y and p >= threshold)
    fp = sum(1 for y, p in pairs if not y and p >= threshold)
    fn = sum(1 for y, p in pairs if y and p < threshold)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stack", help="the file `refusal-guard train --stack-out` wrote")
    ap.add_argument("--min-rows", type=int, default=50, help="leave out groups smaller than this")
    args = ap.parse_args()
    groups = defaultdict(list)
    for key, y, ngram, encoder in read(args.stack):
        groups[key].append((y, ngram, encoder))
    if not groups:
        sys.exit(f"{args.stack}: no whole answer has an encoder reading (train with --encoder-cap 1000000)")
    print("| source | lang | answers | non-answers | ROC AUC n-gram / e5 | F1 at 0.5 n-gram / e5 | best F1 n-gram / e5 |")
    print("|---|---|---|---|---|---|---|")
    for (source, lang), rows in sorted(groups.items()):
        non = sum(1 for r in rows if r[0])
        if len(rows) < args.min_rows or non in (0, len(rows)):
            continue
        cells = []
        for measure in (
            lambda c: roc_auc([r[c] for r in rows if r[0]], [r[c] for r in rows if not r[0]]),
            lambda c: f1_at([(r[0], r[c]) for r in rows], 0.5),
            lambda c: max(f1_at([(r[0], r[c]) for r in rows], t / 20) for t in range(1, 20)),
        ):
            cells.append(f"{measure(1):.3f} / {measure(2):.3f}")
        print(f"| {source} | {lang} | {len(rows)} | {non} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
