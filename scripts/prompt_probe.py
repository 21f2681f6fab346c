#!/usr/bin/env python3
"""Ways of joining the prompt-harm judges, measured on `train --prompt-stack-out`'s rows.

`refusal-guard train --prompt-stack-out FILE` writes every prompt row with the harm
probabilities of the n-gram prompt head, e5's head over frozen vectors and the fine-tuned
prompt layer, each trained without the row's file. This script joins them in other ways
than the pipeline's cascade and scores each join on the files the tuned layer was held out
of (the contrast-style files, `--tune-folds contrast`), so a join can be judged before any
code in the crate changes. A join that is itself fitted (the stacked logistic regression)
is fitted without the file it is scored on, so every figure here is out of file.

Scores, per join: at the e5 tier's policy (flagged from 0.15) the mean over files of
harmful prompts flagged (kept as justified), its worst file, and of benign prompts flagged
(an over-refusal not recovered); ROC AUC per file; and issue 12's operating point, harmful
recall where at most 5% of a file's benign prompts are flagged, at one threshold chosen on
the other files (nested), not per file.

Needs numpy and scikit-learn (`bash scripts/lib/pinned-venv.sh .cache/venv-probe
scikit-learn 1.9.1`). Usage: `.cache/venv-probe/bin/python scripts/prompt_probe.py FILE`.
"""

import argparse
import json
import math
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

POLICY = 0.15  # HarmPolicy::for_e5().benign_below
BENIGN_CAP = 0.05  # issue 12: at most 5% of benign prompts flagged


def logit(p):
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def read(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("e5_tuned") is not None:
                if r.get("e5_frozen") is None:
                    sys.exit(f"{path}: a row has e5_tuned but no e5_frozen; was it written by `train --prompt-stack-out`?")
                rows.append(r)
    if not rows:
        sys.exit(f"{path}: no row has e5_tuned; run train with --tune-folds contrast or all")
    return rows


def cascade(final_from):
    return lambda r: r["ngram"] if r["ngram"] >= final_from else r["e5_tuned"]


def fixed_joins():
    joins = {
        "tuned layer alone": lambda r: r["e5_tuned"],
        "frozen head alone": lambda r: r["e5_frozen"],
        "n-gram alone": lambda r: r["ngram"],
    }
    for t in (0.9, 0.7, 0.5):
        joins[f"cascade, n-gram final from {t}"] = cascade(t)
    joins["mean of logits (n-gram, tuned)"] = lambda r: 1 / (
        1 + math.exp(-(logit(r["ngram"]) + logit(r["e5_tuned"])) / 2)
    )
    return joins


def stacked(rows, files, columns):
    """Logistic regression over the judges' logits, fitted without each file in turn."""

    def x(r):
        return [logit(r[c]) for c in columns]

    p = [None] * len(rows)
    for f in files:
        train = [i for i, r in enumerate(rows) if r["file"] != f]
        test = [i for i, r in enumerate(rows) if r["file"] == f]
        model = LogisticRegression(class_weight="balanced", max_iter=1000)
        model.fit([x(rows[i]) for i in train], [rows[i]["harmful"] for i in train])
        for i, q in zip(test, model.predict_proba([x(rows[i]) for i in test])[:, 1]):
            p[i] = float(q)
    return p


def recall_at_cap(rows, p, files, f):
    """Harmful recall on file `f` at the lowest threshold that flags at most BENIGN_CAP of
    the other files' benign prompts (mean over those files)."""
    p = np.asarray(p)
    in_file = np.array([r["file"] for r in rows])
    harmful = np.array([r["harmful"] for r in rows])
    candidates = np.unique(np.append(p, 1.01))
    shares = []
    for g in files:
        if g == f:
            continue
        benign = np.sort(p[(in_file == g) & ~harmful])
        if len(benign):
            # Share of g's benign prompts at or above each candidate threshold.
            shares.append(1 - np.searchsorted(benign, candidates, side="left") / len(benign))
    mean_share = np.mean(shares, axis=0)
    t = candidates[np.argmax(mean_share <= BENIGN_CAP)]
    h = p[(in_file == f) & harmful]
    b = p[(in_file == f) & ~harmful]
    rec = float(np.mean(h >= t)) if len(h) else None
    fpr = float(np.mean(b >= t)) if len(b) else None
    return t, rec, fpr


def fmt(x):
    return "-" if x is None else f"{x:.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stack", help="the file `train --prompt-stack-out` wrote")
    args = ap.parse_args()
    rows = read(args.stack)
    files = sorted({r["file"] for r in rows})
    joins = {name: [j(r) for r in rows] for name, j in fixed_joins().items()}
    joins["stacked LR (n-gram, tuned), out of file"] = stacked(rows, files, ["ngram", "e5_tuned"])
    joins["stacked LR (n-gram, frozen, tuned), out of file"] = stacked(
        rows, files, ["ngram", "e5_frozen", "e5_tuned"]
    )
    print(f"{len(rows)} rows in {len(files)} held-out files: {', '.join(files)}\n")
    print(
        f"| join | harmful flagged at {POLICY}, mean (worst) | benign flagged, mean | "
        f"mean ROC AUC | recall at <= {BENIGN_CAP:.0%} benign (nested), mean (worst) | benign flagged there, mean |"
    )
    print("|---|---|---|---|---|---|")
    for name, p in joins.items():
        hs, bs, aucs, recs, fprs = [], [], [], [], []
        for f in files:
            idx = [i for i, r in enumerate(rows) if r["file"] == f]
            y = [rows[i]["harmful"] for i in idx]
            q = [p[i] for i in idx]
            harmful = [qq for qq, yy in zip(q, y) if yy]
            benign = [qq for qq, yy in zip(q, y) if not yy]
            if harmful:
                hs.append(sum(x >= POLICY for x in harmful) / len(harmful))
            if benign:
                bs.append(sum(x >= POLICY for x in benign) / len(benign))
            if harmful and benign:
                aucs.append(roc_auc_score(y, q))
            _, rec, fpr = recall_at_cap(rows, p, files, f)
            if rec is not None:
                recs.append(rec)
            if fpr is not None:
                fprs.append(fpr)
        print(
            f"| {name} | {np.mean(hs):.3f} ({min(hs):.3f}) | {np.mean(bs):.3f} | {fmt(np.mean(aucs) if aucs else None)} "
            f"| {np.mean(recs):.3f} ({min(recs):.3f}) | {np.mean(fprs):.3f} |"
        )


if __name__ == "__main__":
    main()
