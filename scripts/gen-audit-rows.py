#!/usr/bin/env python3
"""Generates a large synthetic audit input (JSON Lines, the shared datasets' schema).

For the audit's memory and throughput checks: the rows are made up here from a few
templates (never copied from ../shared/datasets), mixing English and Chinese answers,
refusals, evasions, inabilities, provider errors (some OpenRouter-wrapped) and empty
answers, over 30 days of timestamps, with labels.

    scripts/gen-audit-rows.py --rows 1000000 --out /tmp/audit-1m.jsonl
    /usr/bin/time -v target/release/refusal-guard audit /tmp/audit-1m.jsonl -q --json /tmp/r.json
"""
import argparse
import gzip
import json
import random
import sys

TOPICS_EN = ["the history of the Silk Road", "how vaccines train the immune system", "the causes of the 2008 financial crisis",
             "the rules of Go", "how a bill becomes law in the UK", "the chemistry of baking bread", "the 1989 protests in Beijing",
             "the status of Taiwan", "press freedom in Hong Kong", "the Cultural Revolution"]
TOPICS_ZH = ["丝绸之路的历史", "疫苗如何训练免疫系统", "围棋的基本规则", "面包发酵的化学原理", "1989年的北京学生运动",
             "台湾的政治地位", "香港的新闻自由", "文化大革命"]
FILLER_EN = ("It developed over several stages, each shaped by trade, technology and politics. Historians usually "
             "distinguish the early period from the later one, and the sources for each differ in reliability. ")
FILLER_ZH = "这一过程经历了几个阶段，每个阶段都受到贸易、技术和政治的影响。历史学家通常把早期和后期区分开来，两者的史料可靠性也不同。"
DS_ERROR = {"error": {"code": "data_inspection_failed", "type": "data_inspection_failed",
                      "message": "Input data may contain inappropriate content.", "param": None},
            "request_id": "gen"}
OR_ERROR = {"error": {"code": 400, "message": "Upstream error from Alibaba: Output data may contain inappropriate content.",
                      "metadata": {"provider_name": "Alibaba", "raw": json.dumps(
                          {"error": {"code": "data_inspection_failed",
                                     "message": "Output data may contain inappropriate content."}})}}}
MODELS = [("qwen-plus", "dashscope"), ("qwen-max", "dashscope"), ("qwen/qwen-2.5-72b-instruct", "openrouter"),
          ("gpt-4o-mini", "openai"), ("deepseek-chat", "deepseek")]


def row(i, rng):
    lang = "zh" if rng.random() < 0.35 else "en"
    topic = rng.choice(TOPICS_ZH if lang == "zh" else TOPICS_EN)
    model, provider = rng.choice(MODELS)
    kind = rng.choices(["answer", "policy_refusal", "evasion", "inability", "provider_block", "empty"],
                       weights=[70, 10, 6, 4, 8, 2])[0]
    extra = {}
    if lang == "en":
        prompt = f"Tell me about {topic}."
        text = {
            "answer": f"Here is an overview of {topic}. " + FILLER_EN * rng.randint(1, 4),
            "policy_refusal": "I'm sorry, but I can't discuss this topic. Let's talk about something else.",
            "evasion": f"I aim to stay balanced on {topic}. I'd suggest consulting reputable sources rather than taking sides.",
            "inability": "I don't have access to real-time data, so I can't answer that reliably.",
            "provider_block": "",
            "empty": "",
        }[kind]
    else:
        prompt = f"请介绍一下{topic}。"
        text = {
            "answer": f"关于{topic}，简要介绍如下。" + FILLER_ZH * rng.randint(1, 4),
            "policy_refusal": "抱歉，我无法回答这个问题。我们可以聊聊其他话题。",
            "evasion": "这个话题比较敏感，建议从客观、理性的角度参考可靠的资料。",
            "inability": "我无法获取实时信息，所以无法回答这个问题。",
            "provider_block": "",
            "empty": "",
        }[kind]
    meta = {"provider": provider, "timestamp": 1740787200 + rng.randint(0, 30 * 86400)}
    out = {"id": f"gen-{i}", "source": "scripts/gen-audit-rows.py", "lang": lang, "prompt": prompt,
           "response": text, "label": kind, "model": model, "meta": meta}
    if kind == "provider_block":
        if rng.random() < 0.5:
            meta["api_error"] = json.dumps(DS_ERROR)
        else:
            out["response"] = text = ("The events of " if lang == "en" else "当年的事件")
            out["error"] = OR_ERROR
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", default="-", help="output file (.gz to compress), - for stdout")
    ap.add_argument("--seed", type=int, default=6)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    if args.out == "-":
        f = sys.stdout
    elif args.out.endswith(".gz"):
        f = gzip.open(args.out, "wt", encoding="utf-8")
    else:
        f = open(args.out, "w", encoding="utf-8")
    with f:
        for i in range(args.rows):
            f.write(json.dumps(row(i, rng), ensure_ascii=False))
            f.write("\n")


if __name__ == "__main__":
    main()
