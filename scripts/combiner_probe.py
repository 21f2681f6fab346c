"""Measures other forms of the combiner on the rows the shipped one is fitted on.

The combiner (src/judge/combiner.rs) is a multinomial logistic regression. This probe asks
whether its form limits the verdict on sources it has not seen: it fits a logistic
regression, a small neural network and gradient-boosted trees on the same out-of-source
features, leave-one-source-out, and scores each held-out source's whole answers as the
embedded default would be scored (no encoder reading), at a non-answer threshold chosen on
the other sources. The threshold rule is `train`'s (the best mean F0.5 over sources, each
source weighted alike); `--criterion f1` chooses by F1 instead.

The rows come from `refusal-guard train --stack-out FILE`. Run it with the pinned
scikit-learn (it brings numpy; nothing here ships, and the tests do not need it):

    bash scripts/lib/pinned-venv.sh .cache/venv-probe scikit-learn 1.9.1
    .cache/venv-probe/bin/python scripts/combiner_probe.py /tmp/R/stack.jsonl --forms lr,mlp,gb

`--drop PREFIX,...` leaves features out (an ablation: `--drop length`, `--drop opening`).
`--extra NAME,...` adds inputs the crate does not have, computed here from each row's request
and text (the stack file carries both): the share of the request's words the answer repeats
(`coverage` and its variants), the answer's list lines (`lists`). `--slices team` scores the
team's own files instead of the sources nobody on the team wrote.

Figures from a run are in models/combiner/README.md.
"""

import argparse
import json
import re
import sys

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier

# The same grid as `choose_threshold` in src/judge/fit/mod.rs.
THRESHOLDS = [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
# The sources nobody on the team wrote, by language: the figures that predict new traffic.
OUTSIDE = [("gptfuzz", "en"), ("jade", "zh"), ("speechmap", "en"), ("speechmap", "fi"), ("speechmap", "zh")]


def read(path):
    """The header's feature names and labels (the column orders), and the rows."""
    try:
        with open(path, encoding="utf-8") as f:
            header = json.loads(f.readline())
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"{path}: {e} (write it with `refusal-guard train --stack-out {path}`)")
    if "feature_names" not in header or "labels" not in header:
        sys.exit(f"{path}: the first line names no features or labels; is it a `train --stack-out` file?")
    if not rows:
        sys.exit(f"{path}: no rows after the header")
    n = len(header["feature_names"])
    bad = [i for i, r in enumerate(rows) if len(r["features"]) != n]
    if bad:
        sys.exit(f"{path}: row {bad[0] + 2} has {len(rows[bad[0]]['features'])} features, the header names {n}")
    return header["feature_names"], header["labels"], rows


class AdamLR:
    """The shipped combiner's own fit (`train_linear_head` in src/classify/train.rs): a
    multinomial logistic regression from zero weights, full-batch AdamW (learning rate 0.05,
    weight decay 1e-4) for a fixed number of steps, every row weighted alike. Its step count
    is its regularisation: it stops well before the optimum that `lr` finds."""

    def __init__(self, steps, n_classes, lr=0.05, weight_decay=1e-4):
        self.steps, self.k, self.lr, self.wd = steps, n_classes, lr, weight_decay

    def fit(self, x, y):
        self.classes_ = np.arange(self.k)
        n, d = x.shape
        w = np.zeros((d + 1, self.k))
        xb = np.hstack([x, np.ones((n, 1))])
        onehot = np.eye(self.k)[y]
        m = np.zeros_like(w)
        v = np.zeros_like(w)
        b1, b2 = 0.9, 0.999
        for t in range(1, self.steps + 1):
            g = xb.T @ (self._softmax(xb @ w) - onehot) / n
            w *= 1 - self.lr * self.wd
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            w -= self.lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + 1e-8)
        self.w = w
        return self

    @staticmethod
    def _softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_proba(self, x):
        return self._softmax(np.hstack([x, np.ones((len(x), 1))]) @ self.w)


def form(name, n_classes):
    """`adamN` (the shipped fit, N steps: `adam400`), `lr` (or `lrC`, e.g. `lr0.01`: the
    inverse regularisation strength), `mlp`, `gb`."""
    if name.startswith("lr"):
        try:
            c = float(name[2:]) if name[2:] else 1.0
        except ValueError:
            sys.exit(f"form {name!r}: expected lr or lr followed by a number (lr0.01)")
        return LogisticRegression(C=c, max_iter=2000)
    if name.startswith("adam"):
        try:
            return AdamLR(int(name[4:]), n_classes)
        except ValueError:
            sys.exit(f"form {name!r}: expected adam followed by a step count (adam400)")
    if name == "mlp":
        return MLPClassifier(hidden_layer_sizes=(16,), alpha=1e-3, max_iter=300, random_state=0)
    if name == "gb":
        return HistGradientBoostingClassifier(max_iter=150, max_depth=3, learning_rate=0.1, random_state=0)
    sys.exit(f"unknown form {name!r}; expected adamN (adam400), lr, lrC (lr0.01), mlp or gb")


# CJK characters (Han, kana, Hangul): read as character bigrams, having no spaces.
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


def content_keys(text, stem=6, grams=None):
    """The keys a text's content is matched by: each pair of adjacent CJK characters, and
    each word of four letters or more cut to its first `stem` letters (a crude stem that
    holds across English and Finnish endings), or with `grams` its letter n-grams."""
    text = text.lower()
    keys = set()
    for run in CJK.findall(text):
        keys.update(run[i:i + 2] for i in range(len(run) - 1))
    for word in re.findall(r"[^\W\d_]+", CJK.sub(" ", text)):
        if len(word) < 4:
            continue
        if grams:
            keys.update(word[i:i + grams] for i in range(len(word) - grams + 1))
        else:
            keys.add(word[:stem])
    return keys


def coverage(above=None, **keys):
    """The share of the request's content keys the text repeats: centred on 0.5, or with
    `above` only its excess over `above` (a high share is evidence of an answer, a low one
    of nothing). 0 (no evidence) where the row has no request or the request has no key."""

    def extra(prompt, text):
        wanted = content_keys(prompt or "", **keys)
        if not wanted:
            return 0.0
        share = len(wanted & content_keys(text, **keys)) / len(wanted)
        return share - 0.5 if above is None else max(0.0, share - above)

    return extra


# A line that starts a list item, a heading or a numbered step (en, zh).
LIST_LINE = re.compile(r"^\s*(\d{1,2}[.)、]|[-*•]\s|#{1,4}\s|第[一二三四五六七八九十]|[一二三四五六七八九十][、.]|step\s*\d|首先|其次|最后)", re.I | re.M)


def lists(prompt, text):
    """How many lines start a list item, heading or step, up to 10, over 10."""
    return min(len(LIST_LINE.findall(text)), 10) / 10


# Inputs a probe computes from a row's request and text, by name (`--extra`); measured in
# models/combiner/README.md ("Inputs from the request and the answer's shape").
EXTRAS = {
    "coverage": coverage(),
    "coverage-stem4": coverage(stem=4),
    "coverage-4grams": coverage(grams=4),
    "coverage-above-0.5": coverage(above=0.5),
    "coverage-above-0.6": coverage(above=0.6),
    "coverage-above-0.7": coverage(above=0.7),
    "coverage-above-0.8": coverage(above=0.8),
    "coverage-4grams-above-0.5": coverage(above=0.5, grams=4),
    "lists": lists,
}
# The slices a row of the table scores: the sources nobody on the team wrote (the default),
# or the team's own files (`--slices team`).
TEAM = [("team:responses-en", "en"), ("team:responses-en2", "en"), ("team:responses-topic-en", "en"),
        ("team:responses-zh", "zh"), ("team:responses-zh2", "zh"), ("team:responses-topic-zh", "zh"),
        ("team:responses-fi2", "fi"), ("team:responses-xx", "fi"), ("team:examples", "en"), ("team:examples", "zh")]


def roc_auc(higher, lower):
    """The chance that a row of `higher` reads above one of `lower` (ties count half);
    None where either is empty."""
    if len(higher) == 0 or len(lower) == 0:
        return None
    return roc_auc_score(np.r_[np.ones(len(higher)), np.zeros(len(lower))], np.r_[higher, lower])


def counts(gold, predicted):
    tp = int(np.sum(gold & predicted))
    return tp, int(np.sum(~gold & predicted)), int(np.sum(gold & ~predicted))


def f1(gold, predicted):
    tp, fp, fn = counts(gold, predicted)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def f_half(gold, predicted):
    tp, fp, fn = counts(gold, predicted)
    if tp == 0:
        return 0.0
    p, r = tp / (tp + fp), tp / (tp + fn)
    return 1.25 * p * r / (0.25 * p + r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stack", help="the file `refusal-guard train --stack-out` wrote")
    ap.add_argument("--forms", default="adam400,lr,mlp,gb", help="comma-separated: adamN (adam400: the shipped fit), lr, lrC (lr0.01), mlp, gb")
    ap.add_argument("--criterion", choices=["fhalf", "f1"], default="fhalf")
    ap.add_argument("--drop", default="", help="comma-separated feature-name prefixes to leave out (an ablation)")
    ap.add_argument("--extra", default="", help=f"comma-separated inputs computed from each row's request and text, added to the features: {', '.join(EXTRAS)}")
    ap.add_argument("--auc", action="store_true", help="print each --extra input's ROC AUC (answers read higher than non-answers) per slice, whole answers, and stop")
    ap.add_argument("--slices", choices=["outside", "team"], default="outside", help="score the sources nobody on the team wrote, or the team's files")
    args = ap.parse_args()
    criterion = f_half if args.criterion == "fhalf" else f1
    slices = OUTSIDE if args.slices == "outside" else TEAM

    names, labels, rows = read(args.stack)
    drop = [d for d in args.drop.split(",") if d]
    unknown = [d for d in drop if not any(n.startswith(d) for n in names)]
    if unknown:
        sys.exit(f"--drop {unknown[0]!r} names no feature; the features are {', '.join(names)}")
    keep = [i for i, n in enumerate(names) if not any(n.startswith(d) for d in drop)]
    source = np.array([r["source"] for r in rows])
    lang = np.array([r["lang"] for r in rows])
    whole = np.array([not r["window"] for r in rows])
    label = np.array([labels.index(r["label"]) for r in rows])
    answer = labels.index("answer")
    plain = np.array([r["features"] for r in rows], dtype=np.float32)[:, keep]
    has_enc = np.array([r["features_with_encoder"] is not None for r in rows])
    with_enc = np.array([r["features_with_encoder"] or r["features"] for r in rows], dtype=np.float32)[:, keep]
    extras = [e for e in args.extra.split(",") if e]
    if args.auc and not extras:
        sys.exit("--auc measures the --extra inputs: name at least one (--extra coverage)")
    for e in extras:
        if e not in EXTRAS:
            sys.exit(f"--extra {e!r}: the inputs a probe computes are {', '.join(EXTRAS)}")
        if "text" not in rows[0]:
            sys.exit(f"--extra needs each row's text: write {args.stack} with a `refusal-guard train` that stacks it")
        column = np.array([[EXTRAS[e](r.get("prompt"), r["text"])] for r in rows], dtype=np.float32)
        plain = np.hstack([plain, column])
        with_enc = np.hstack([with_enc, column])
    gold = label != answer
    sources = sorted(set(source))
    if args.auc:
        print(f"| input: ROC AUC, answers over non-answers (mean over answers / non-answers) | {' | '.join(f'{s} {l}' for s, l in slices)} |")
        print(f"|---|{'---|' * len(slices)}")
        for i, e in enumerate(extras):
            column = plain[:, plain.shape[1] - len(extras) + i]
            cells = []
            for s, l in slices:
                sel = (source == s) & whole & (lang == l)
                auc = roc_auc(column[sel & ~gold], column[sel & gold])
                cells.append("-" if auc is None else
                             f"{auc:.3f} ({column[sel & ~gold].mean():.2f} / {column[sel & gold].mean():.2f})")
            print(f"| {e} | {' | '.join(cells)} |")
        return

    print(f"| form | {' | '.join(f'{s} {l}' for s, l in slices)} | mean |")
    print(f"|---|{'---|' * (len(slices) + 1)}")
    for name in args.forms.split(","):
        # Each source's rows judged by a combiner fitted on the others, on both views of a
        # row as `train_combiner` does.
        non_answer = np.zeros(len(rows))
        for s in sources:
            train = source != s
            x = np.concatenate([plain[train], with_enc[train & has_enc]])
            y = np.concatenate([label[train], label[train & has_enc]])
            model = form(name, len(labels)).fit(x, y)
            p = model.predict_proba(plain[~train])
            non_answer[~train] = 1.0 - p[:, list(model.classes_).index(answer)]
        cells = []
        for s, l in slices:
            others = [o for o in sources if o != s]

            def mean_at(t):
                return np.mean([criterion(gold[(source == o) & whole], non_answer[(source == o) & whole] >= t)
                                for o in others])

            t = max(THRESHOLDS, key=lambda t: (mean_at(t), -t))
            sel = (source == s) & whole & (lang == l)
            # A slice the file does not hold (a stack of other sources) is shown as "-".
            cells.append(f1(gold[sel], non_answer[sel] >= t) if sel.any() else None)
        scored = [c for c in cells if c is not None]
        shown = " | ".join("-" if c is None else f"{c:.3f}" for c in cells)
        mean = f"{np.mean(scored):.3f}" if scored else "-"
        added = f", with {args.extra}" if extras else ""
        print(f"| {name} ({args.criterion}{', without ' + args.drop if drop else ''}{added}) | {shown} | {mean} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
