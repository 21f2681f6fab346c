#!/usr/bin/env python3
"""Writes the distinct requests of some of speechmap's question sets as a prompt file.

    python3 scripts/speechmap_requests.py ../shared/datasets/speechmap_criticism_nonqwen.jsonl \
        OUT.jsonl us_criticism russia_criticism eu_criticism

Each line is {"id", "lang", "prompt", "harmful": false}: speechmap's requests (to criticise,
satirise or analyse a government) are lawful political speech, as `train` reads them
(`Record::request_harm`). With `train --prompt-exclude speechmap_criticism_nonqwen.jsonl
--prompts OUT.jsonl` the prompt judgment learns some question sets and can be measured on
the others (models/e5-heads/README.md, "Speechmap's requests").
"""
import json
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    source, out, sets = sys.argv[1], sys.argv[2], set(sys.argv[3:])
    seen = {}
    known = set()
    with open(source, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            qs = r["meta"]["question_set"]
            known.add(qs)
            if qs in sets and r["prompt"].strip():
                seen.setdefault(r["prompt"], (qs, r["lang"]))
    unknown = sets - known
    if unknown:
        sys.exit(f"no such question set: {sorted(unknown)} (the file has {sorted(known)})")
    with open(out, "w", encoding="utf-8") as f:
        for i, (prompt, (qs, lang)) in enumerate(seen.items()):
            row = {"id": f"speechmap-request-{qs}-{i:03}", "lang": lang, "prompt": prompt, "harmful": False}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{out}: {len(seen)} requests of {', '.join(sorted(sets))}")


if __name__ == "__main__":
    main()
