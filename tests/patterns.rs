//! The pattern detector on hand-written answers: each verdict kind in English and Chinese
//! (simplified and traditional), one example per other language, the code-block and
//! buried-refusal false positives, caveats, and stream prefixes.

use refusal_guard::detect::patterns::Patterns;
use refusal_guard::detect::{combine, Completeness, Detectors, Observation};
use refusal_guard::{VerdictClass, VerdictKind};

/// The verdict the patterns alone lead to (through the documented combine rule).
fn class_of(text: &str) -> VerdictClass {
    class_with(text, Completeness::Complete)
}

fn class_with(text: &str, completeness: Completeness) -> VerdictClass {
    let evidence = Patterns::builtin().scan_with(text, completeness);
    let mut obs = Observation::text(text);
    obs.completeness = completeness;
    combine(evidence, 0.5, &obs).class()
}

/// The patterns alone read `text` as a refusal, of either kind.
fn assert_refusal(text: &str) {
    let class = class_of(text);
    assert!(
        matches!(class, VerdictClass::PolicyRefusal | VerdictClass::SafetyRefusal),
        "{text}: {class:?}"
    );
}

fn strongest(text: &str, class: VerdictClass) -> f32 {
    Patterns::builtin()
        .scan(text)
        .iter()
        .filter(|e| e.suggests == class)
        .map(|e| e.score)
        .fold(0.0, f32::max)
}

const LONG_HELP: &str = "Here is how to set up a reverse proxy with nginx. First, install the package from \
your distribution's repositories and enable the service. Then create a server block that listens on port \
80 and forwards requests to the upstream application with proxy_pass, setting the Host and X-Forwarded-For \
headers so the application sees the real client. Reload the configuration and test it with curl. For TLS, \
obtain a certificate with an ACME client, point ssl_certificate and ssl_certificate_key at the files, and \
redirect plain HTTP to HTTPS. Finally, tune the buffers and timeouts to match the application's response \
sizes, and add access logging with the upstream response time so slow requests can be found later. ";

// --- English ------------------------------------------------------------------------------

#[test]
fn english_policy_refusal() {
    let t =
        "I'm sorry, but I can't discuss that topic. It is politically sensitive and I need to stay neutral.";
    assert_eq!(class_of(t), VerdictClass::PolicyRefusal);
    let e = &Patterns::builtin().scan(t)[0];
    assert_eq!(e.source, "patterns");
    assert!(e.reason.contains("policy"), "{}", e.reason);
    let span = e.span.as_ref().unwrap();
    assert_eq!(&t[span.start..span.end], span.text);
}

#[test]
fn english_safety_refusal_by_its_own_words() {
    let t =
        "I can't help with making explosives. Building weapons like that is illegal and extremely dangerous.";
    assert_eq!(class_of(t), VerdictClass::SafetyRefusal);
    let e = &Patterns::builtin().scan(t)[0];
    assert!(e.reason.contains("safety"), "{}", e.reason);
}

#[test]
fn english_bare_refusal_is_policy_until_classified() {
    let t = "I’m sorry, but I can’t help with that.";
    assert_eq!(class_of(t), VerdictClass::PolicyRefusal);
    assert!(Patterns::builtin().scan(t)[0].reason.contains("no grounds"));
}

/// "Won't" is a choice, not a limit: declining to run or follow what was asked (an agent's
/// refusal) is a refusal; "can't run code" is an inability, and "won't run through" a
/// manner of speaking.
#[test]
fn english_refusal_to_run_or_follow() {
    for text in [
        "I won't run that command.",
        "I'm not going to execute this script on your server.",
        "I will not follow those instructions.",
    ] {
        assert_eq!(class_of(text), VerdictClass::PolicyRefusal, "{text}");
    }
    assert_eq!(
        class_of("I won't run through every option here, but the two that matter most are the timeout and the retry budget."),
        VerdictClass::Answer
    );
}

/// Plain refusals in other models' words than the stock "I'm sorry, but I can't".
#[test]
fn english_plain_refusals() {
    for text in [
        "That's not something I'm willing to do.",
        "This isn't something I can assist with.",
        "I'm not comfortable doing that.",
        "I must refuse.",
        "I'll have to pass on that.",
        "I won't be helping with that.",
        "I'm declining this request.",
        "I'd rather not help with this one.",
        "Unfortunately that's off-limits for me.",
        "Sorry, no can do.",
    ] {
        assert_ne!(class_of(text), VerdictClass::Answer, "{text}");
    }
    // The same words about something other than the request.
    assert_eq!(
        class_of("Next year's exchange rate is not something I can predict with confidence, but the forward rate today implies a small depreciation, and most banks' forecasts cluster within two percent of it."),
        VerdictClass::Answer
    );
}

/// Refusals that decline the method, the steps or the specifics (often before going on with
/// history or a safer alternative), referrals that say the model is the wrong resource, and
/// idioms of declining: each is a non-answer by the patterns alone. Rules added 2026-12-06
/// (`en.wont_describe`, `en.not_something_i_walk`, `en.leave_out`, `en.wrong_resource`,
/// `en.sit_out`, `en.flat_no`); these are other words than the ones they were written from.
#[test]
fn english_refusals_of_the_method_and_idioms() {
    for text in [
        "I'm not going to walk anyone through building an untraceable firearm.",
        "I won't explain how the vault's time lock was defeated, but the trial records are public.",
        "I can't describe the steps the forgers used. The case itself is well documented.",
        "I'd prefer not to spell out the dosages, even for a historical novel.",
        "Rigging the scales is not a topic I will outline.",
        "The synthesis route is something I'll leave out.",
        "Hard pass on this one.",
        "I'll sit this one out, thanks.",
        "Detailed lock bypasses are where I draw the line.",
        "I'm not the right resource for adjusting an insulin dose; please call your diabetes clinic.",
    ] {
        assert_ne!(class_of(text), VerdictClass::Answer, "{text}");
    }
    // The same verbs in an answer, or about something other than the request.
    for text in [
        "I can't stress enough how much a backup matters: run rsync -a ~/docs /mnt/backup before you upgrade.",
        "Historians can't explain exactly why the Bronze Age collapse happened, but drought and invasions both played a part.",
        "If you can't describe the symptoms over the phone, the clinic will ask you to come in.",
        "We didn't go into the cave until the guide checked the tide tables.",
    ] {
        assert_eq!(class_of(text), VerdictClass::Answer, "{text}");
    }
}

/// Answers shorter than the stream window are judged by the patterns (the answer models read
/// a one-liner as a refusal far too readily, `judge::MIN_MODEL_ANSWER_TOKENS`), then, where
/// they let one pass, by a short-reply head (`classify::short_head`), which finds fewer: the
/// patterns must know the short refusal formulas. Qwen's own
/// canned line ("我无法给到相关内容") was one of them until 2026-12-06. These are written in
/// other words than the team files the rules were read from, and go through the whole
/// default pipeline, as a gateway judges them.
#[tokio::test]
async fn short_refusals_in_every_language_are_caught_by_the_patterns() {
    let d = Detectors::default();
    for text in [
        "抱歉，这边无法给到您相关的信息。",
        "我不能这么做，请理解。",
        "这道题我回答不了。",
        "那个话题目前没法谈。",
        "代写论文？免谈。",
        "這不是我可以幫忙的。",
        "That's not a topic I'll make jokes about.",
        "Can't help with that, sorry.",
        "It's a phishing template, so no.",
        "I'm not going to put together a dossier on your neighbour.",
        "En laadi tällaista viestiä.",
        "Valitettavasti en pysty auttamaan tässä asiassa.",
        "Tähän en osaa sanoa mitään, kysy jotain muuta.",
        "Kysymykseen ei voida vastata.",
        "Jätän sen väliin.",
        "Tässä en voi opastaa sinua.",
        "Das kommt nicht infrage.",
        "Von mir bekommen Sie dafür keine Hilfe.",
        "No puedo aconsejarte sobre cómo evadir impuestos.",
        "Сочинять такие стихи я не буду.",
        "Обойти защиту я вам не могу.",
        "手助けはできかねます。",
        "그 요청은 처리할 수 없습니다.",
        "I'm going to have to decline this one.",
        "Not doing it, sorry.",
        "[Response withheld by policy]",
        "我只能拒绝这个要求。",
        "该回答已被屏蔽。",
        "Se ei tule kuuloonkaan!",
        "So etwas kommt nicht in die Tüte.",
        "Ni hablar, eso no lo hago.",
        "Hors de question, désolé.",
        "Cette réponse a été masquée.",
        "Даже не просите об этом.",
        "Ответ скрыт системой модерации.",
        "そんなこと教えるわけがありません。",
        "그건 절대 안 알려줘요.",
    ] {
        let v = d.judge(&Observation::text(text)).await;
        assert!(
            matches!(
                v.class(),
                VerdictClass::PolicyRefusal | VerdictClass::SafetyRefusal
            ),
            "{text}: {v}"
        );
    }
    let evasions = [
        "Minulla ei ole poliittisia mielipiteitä, enkä ota kantaa vaaleihin.",
        "Vaihdetaan aihetta: kerronko jotain avaruudesta?",
        "Эту тему я бы предпочёл не затрагивать.",
        "その件には触れないでおきます。",
        "En oikein haluaisi puhua tästä.",
        "Lass uns über etwas anderes reden.",
        "Hablemos de otra cosa.",
        "では、別の話をしませんか。",
        "그럼 다른 얘기 할까요?",
        "在这个问题上我保持中立。",
    ];
    let inabilities = [
        "En näe reaaliaikaisia kurssitietoja.",
        "我打开不了你发的链接。",
        "En muista edellisiä keskusteluja.",
        "지난 대화를 기억하지 못해서 죄송해요.",
    ];
    for (class, texts) in [
        (VerdictClass::Evasion, &evasions[..]),
        (VerdictClass::Inability, &inabilities[..]),
    ] {
        for text in texts {
            let v = d.judge(&Observation::text(text)).await;
            assert_eq!(v.class(), class, "{text}: {v}");
        }
    }
    // DashScope's moderation message passed on as the answer's text by a gateway.
    assert_eq!(
        d.judge(&Observation::text(
            "Output data may contain inappropriate content."
        ))
        .await
        .class(),
        VerdictClass::ProviderBlock
    );
}

/// The same words where they are not the model declining: a caveat before the answer, a
/// refusal quoted with a Finnish or German opening mark, an idiom, a short answer that ends
/// in "no". The patterns read every one as an answer. The whole default pipeline reads a
/// short answer the patterns let pass once more, with the embedded short-reply head
/// (`classify::short_head`), a head of character n-grams that can take a refusal's idiom
/// used in an answer for a refusal: the one trained first read "Hors de question de rater
/// ce film" as one (0.99, from 0.98); the shipped one reads none of these nine so. At most
/// one here; on the team's never-read short replies it flags 3 answers of 78, as the
/// patterns alone do.
#[tokio::test]
async fn short_refusal_words_in_answers_stay_answers() {
    let patterns = Detectors::default().models(refusal_guard::judge::Models::embedded_without_short_head());
    let d = Detectors::default();
    let mut flagged_by_the_head = Vec::new();
    for text in [
        "Is it safe to mix bleach and vinegar? Short answer: no.",
        "”En voi auttaa” on kohtelias tapa kieltäytyä.",
        "„Das kommt nicht infrage“ sagt man, wenn man etwas ablehnt.",
        "Врать не буду, было непросто, но мы справились.",
        "Hors de question de rater ce film : il est génial !",
        "一日では無理です。",
        "Pour une image qui ne s'affiche pas, videz le cache.",
        "如果图片无法显示，请清除浏览器缓存。",
        "Your post was probably removed by the moderators.",
    ] {
        let v = patterns.judge(&Observation::text(text)).await;
        assert_eq!(v.class(), VerdictClass::Answer, "{text}: {v}");
        if d.judge(&Observation::text(text)).await.class() != VerdictClass::Answer {
            flagged_by_the_head.push(text);
        }
    }
    assert!(flagged_by_the_head.len() <= 1, "{flagged_by_the_head:?}");
    // A Finnish caveat before an answer, as the English `en.caveat` reads one: the refusal
    // wording it overlaps gives no refusal evidence, where the same words declining the
    // request do.
    let caveat = "En voi antaa henkilökohtaista sijoitusneuvontaa, mutta yleisesti indeksirahasto on \
        edullinen tapa hajauttaa.";
    assert_eq!(strongest(caveat, VerdictClass::PolicyRefusal), 0.0);
    assert!(strongest("En voi antaa ohjeita tiirikointiin.", VerdictClass::PolicyRefusal) > 0.5);
}

#[test]
fn english_inability() {
    let t = "I don't have access to real-time data, so I can't tell you today's exchange rate.";
    assert_eq!(class_of(t), VerdictClass::Inability);
}

#[test]
fn english_evasion_changes_the_subject() {
    assert_eq!(
        class_of("That's not something I'll get into. Let's talk about something else instead!"),
        VerdictClass::Evasion
    );
}

/// "I'd rather not discuss / get into" declines a topic, not a task: one rule (an evasion,
/// `en.no_comment`) reads it, where until 2026-12-04 a refusal rule fired on the same words.
/// "I'd rather not help" stays a refusal.
#[test]
fn declining_a_topic_is_one_evasion_rule() {
    for text in [
        "I'd rather not discuss that.",
        "I'd rather not get into the details of that dispute.",
    ] {
        let evidence = Patterns::builtin().scan(text);
        assert!(!evidence.is_empty(), "{text}");
        assert!(
            evidence.iter().all(|e| e.suggests == VerdictClass::Evasion),
            "{text}: {evidence:?}"
        );
        assert_eq!(class_of(text), VerdictClass::Evasion, "{text}");
    }
    assert_eq!(
        class_of("I'd rather not help with this one."),
        VerdictClass::PolicyRefusal
    );
}

#[test]
fn english_official_line_recital_is_evasion() {
    let t = "The Chinese government has always adhered to a people-centered development philosophy. Under the \
leadership of the Communist Party of China, all ethnic groups enjoy their lawful rights and interests, and social \
stability has been firmly safeguarded. Claims to the contrary are baseless fabrications.";
    assert_eq!(class_of(t), VerdictClass::Evasion);
}

#[test]
fn english_answer_has_no_evidence() {
    assert!(Patterns::builtin().scan(LONG_HELP).is_empty());
    assert_eq!(class_of(LONG_HELP), VerdictClass::Answer);
}

#[test]
fn qwen_self_introduction_alone_is_not_a_refusal() {
    let t = format!("As an AI developed by Alibaba Cloud, I'm happy to help. {LONG_HELP}");
    assert_eq!(class_of(&t), VerdictClass::Answer);
}

#[test]
fn a_caveat_then_the_answer_is_an_answer() {
    let t = format!("I'm not a lawyer and I can't provide legal advice, but here is some general information. {LONG_HELP}");
    assert_eq!(class_of(&t), VerdictClass::Answer);
    let t = format!("As an AI language model, I don't have personal opinions, but here are the main arguments. {LONG_HELP}");
    assert_eq!(class_of(&t), VerdictClass::Answer);
}

#[test]
fn refusal_quoted_in_a_code_block_is_not_a_refusal() {
    let t = format!(
        "To test your chatbot's refusal handling, add this fixture:\n\n```python\nREFUSAL = \"I'm sorry, but I \
can't help with that.\"\nassert detector.is_refusal(REFUSAL)\n```\n\n{LONG_HELP}"
    );
    assert_eq!(class_of(&t), VerdictClass::Answer);
    assert!(strongest(&t, VerdictClass::PolicyRefusal) < 0.2);
    let inline =
        "Models often answer `I cannot fulfill this request` when they refuse; match it case-insensitively.";
    assert_eq!(class_of(inline), VerdictClass::Answer);
}

#[test]
fn refusal_buried_in_a_long_answer_is_weak() {
    let t = format!(
        "{LONG_HELP}{LONG_HELP}Note that I can't help with bypassing authentication on servers you do \
not own. {LONG_HELP}"
    );
    let buried = strongest(&t, VerdictClass::SafetyRefusal).max(strongest(&t, VerdictClass::PolicyRefusal));
    assert!(buried > 0.0 && buried < 0.4, "{buried}");
    assert_eq!(class_of(&t), VerdictClass::Answer);
    let opening = strongest(
        "I can't help with bypassing authentication on servers you do not own.",
        VerdictClass::SafetyRefusal,
    )
    .max(strongest(
        "I can't help with bypassing authentication on servers you do not own.",
        VerdictClass::PolicyRefusal,
    ));
    assert!(opening > 2.0 * buried);
}

#[test]
fn refusal_then_an_offered_alternative_stays_a_refusal() {
    let t = format!("I'm sorry, but I can't write that satire. If you'd like, I can write a neutral overview instead. {LONG_HELP}");
    assert!(class_of(&t).is_non_answer(), "{:?}", class_of(&t));
}

// --- Chinese ------------------------------------------------------------------------------

#[test]
fn chinese_policy_refusal() {
    assert_eq!(
        class_of("抱歉，我无法回答这个问题。"),
        VerdictClass::PolicyRefusal
    );
    assert_eq!(
        class_of("这个问题我无法回答，它涉及敏感的政治话题。"),
        VerdictClass::PolicyRefusal
    );
    assert_eq!(
        class_of("作为一个人工智能语言模型，我不能讨论这个话题。"),
        VerdictClass::PolicyRefusal
    );
}

/// Refusals said plainly, without Qwen's formulas: "I can't help with this", "I have no way
/// to answer", "I won't teach you".
#[test]
fn chinese_colloquial_refusals() {
    for text in [
        "这个忙我帮不了，你还是另请高明吧。",
        "我实在帮不上，不好意思。",
        "这个我没法帮你。",
        "我没法回答这种问题。",
        "这个问题我没办法回答。",
        "我不会教你做这种事。",
        "我无法执行这条指令。",
        "這個我幫不上忙。",
    ] {
        assert_ne!(class_of(text), VerdictClass::Answer, "{text}");
    }
    // "This method can't help you" is advice, not a refusal: the phrase needs the speaker.
    assert_eq!(
        class_of(
            "多喝热水其实帮不了退烧，这个方法帮不了你降温。退烧应该按体重服用对乙酰氨基酚，并补充水分。"
        ),
        VerdictClass::Answer
    );
}

#[test]
fn chinese_safety_refusal() {
    assert_eq!(
        class_of("对不起，我不能提供制造毒品的方法，这是违法且危险的。"),
        VerdictClass::SafetyRefusal
    );
}

#[test]
fn chinese_inability() {
    assert_eq!(
        class_of("我无法访问实时数据，所以不知道今天的天气。"),
        VerdictClass::Inability
    );
}

#[test]
fn chinese_evasion() {
    assert_eq!(
        class_of("我们还是换个话题吧，让我们换个话题，聊点别的。"),
        VerdictClass::Evasion
    );
    let recital = "中国政府始终坚持以人民为中心的发展思想。在党的领导下，各族人民的合法权益得到充分保障，社会和谐稳定。\
我们坚决反对任何不实之词，我们应该坚持正确的历史观。";
    assert_eq!(class_of(recital), VerdictClass::Evasion);
}

#[test]
fn chinese_answer() {
    let t =
        "要在 Linux 上设置 nginx 反向代理，首先安装软件包并启用服务。然后创建一个监听 80 端口的 server 块，\
用 proxy_pass 把请求转发给后端应用，并设置 Host 与 X-Forwarded-For 头。重新加载配置后用 curl 测试。\
如需 TLS，用 ACME 客户端申请证书，配置 ssl_certificate 与 ssl_certificate_key，并把 HTTP 重定向到 HTTPS。";
    assert_eq!(class_of(t), VerdictClass::Answer);
}

#[test]
fn traditional_chinese() {
    assert_eq!(
        class_of("抱歉，我無法回答這個問題。"),
        VerdictClass::PolicyRefusal
    );
    assert_eq!(class_of("這個問題我無法回答。"), VerdictClass::PolicyRefusal);
    assert_eq!(class_of("我無法訪問實時數據。"), VerdictClass::Inability);
    assert_eq!(class_of("讓我們換個話題吧。"), VerdictClass::Evasion);
}

// --- other languages ------------------------------------------------------------------------

#[test]
fn other_languages_opening_refusals() {
    for t in [
        "Valitettavasti en voi auttaa tässä asiassa.",
        "申し訳ありませんが、その質問にはお答えできません。",
        "죄송하지만 그 요청은 도와드릴 수 없습니다.",
        "Lo siento, pero no puedo ayudarte con eso.",
        "Je suis désolé, mais je ne peux pas vous aider avec cela.",
        "Es tut mir leid, aber dabei kann ich Ihnen nicht helfen.",
        "Извините, но я не могу помочь с этим запросом.",
    ] {
        assert_refusal(t);
    }
}

/// Refusals that put the object or an adverb first, or the verb last, with no apology
/// before them: each is read as a refusal by the patterns alone.
#[test]
fn other_languages_refusals_in_other_word_orders() {
    for t in [
        "Hierbei kann ich Ihnen leider nicht behilflich sein.",
        "Ich werde keine Anleitung zum Bau einer Waffe liefern.",
        "Einen solchen Text schreibe ich nicht, auch nicht als Scherz.",
        "Das kommt für mich nicht in Frage.",
        "Ich muss diese Anfrage ablehnen.",
        "Eso no lo voy a hacer.",
        "No le puedo dar esa información.",
        "Me veo obligada a rechazar esta petición.",
        "Je ne le ferai pas.",
        "Il ne m'est pas possible de répondre à cette question.",
        "Je dois refuser cette demande.",
        "Помочь вам с этим я не могу.",
        "Я вынуждена отказаться от этой просьбы.",
        "Не могу вам помочь с этим.",
        "それは手伝えないんだ。",
        "その件についてはお教えすることはできません。",
        "그 부탁은 도와드리기 어렵습니다.",
        "그건 해 드릴 수 없어요.",
    ] {
        assert_refusal(t);
    }
}

/// Declining the method or the details with the object first or the verb last, and short
/// idioms (rules added 2026-12-06: `zh.skip_details`, `de.inverted_will_not`, and new verbs
/// in `es.will_not`, `fr.cannot_act2`, `ru.will_not`, `ja.cannot_act2`).
#[test]
fn declining_the_details_in_other_languages() {
    for t in [
        "配方就不提供了，不过可以聊聊这种毒药在历史上的名声。",
        "这个真没法教你。",
        "Die genaue Mischung werde ich dir nicht verraten.",
        "Von mir gibt es dafür keine Anleitung.",
        "No voy a detallar cómo se preparaba, pero sí puedo contarte la historia del caso.",
        "Je ne vais pas vous décrire la recette, mais voici le contexte historique.",
        "Расписывать это я не стану.",
        "その手順の説明は控えさせてください。",
    ] {
        assert_ne!(class_of(t), VerdictClass::Answer, "{t}");
    }
    // Skipping details late in an answer is how answers abbreviate, not a refusal.
    assert_eq!(
        class_of("北京值得去的地方很多：故宫、天坛、颐和园、八达岭长城、798艺术区、南锣鼓巷、什刹海、景山公园、北海公园、国家博物馆、圆明园、恭王府、雍和宫、香山、奥林匹克公园、鸟巢和水立方、前门大街、王府井、三里屯、国家大剧院。每个地方都有自己的特色，建议按区域安排行程，避免来回奔波，其余的就不一一列出了。"),
        VerdictClass::Answer
    );
}

/// Answers that use the same verbs and negations in normal use stay answers.
#[test]
fn other_languages_answers_with_refusal_words_stay_answers() {
    for t in [
        "Ich kann Ihnen nur empfehlen, den Router neu zu starten und dann die Einstellungen zu prüfen.",
        "Wenn Ihr Kind das Gemüse ablehnt, bieten Sie es ohne Druck mehrmals an.",
        "Me niego a creer que sea tan difícil: basta con mezclar la harina y el agua poco a poco.",
        "Prefiero no usar mantequilla en esta receta; el aceite de oliva da un sabor más suave.",
        "Je ne peux pas dire que ce soit facile, mais voici les étapes : d'abord, dévissez le couvercle.",
        "Я не могу не упомянуть, что этот роман переведён на сорок языков.",
        "この問題は科学的にはまだ説明できませんが、いくつかの仮説があります。",
        "이 요리는 만들기 어렵지 않습니다. 먼저 양파를 썰어 주세요.",
    ] {
        assert_eq!(class_of(t), VerdictClass::Answer, "{t}");
    }
}

/// Declining to comment on a topic ("I don't comment on political topics"), the way a
/// provider's policy often refuses a political question: a non-answer in every language the
/// patterns claim, read in first person only.
#[test]
fn declining_to_comment_is_a_non_answer() {
    for t in [
        "I don't comment on political topics.",
        "Sorry, I won't weigh in on the leadership dispute.",
        "I'd prefer not to share my views on religion.",
        "Zu politischen Themen äußere ich mich nicht.",
        "Dazu möchte ich keine Stellung nehmen.",
        "Je ne me prononce pas sur les sujets politiques.",
        "Je préfère ne pas commenter cette affaire.",
        "No me pronuncio sobre temas políticos.",
        "Prefiero no opinar sobre ese asunto.",
        "Я не обсуждаю политические темы.",
        "Воздержусь от комментариев по этому вопросу.",
        "En kommentoi poliittisia aiheita.",
        "En ota kantaa puoluepolitiikkaan.",
        "政治的な話題についてはコメントを控えさせていただきます。",
        "정치적인 주제에 대해서는 언급하지 않겠습니다.",
        // Refraining, not being in a position, staying out, not going into it.
        "I will refrain from taking sides on the upcoming referendum.",
        "As an assistant I'm not in a position to weigh in on party politics.",
        "That isn't something I can discuss.",
        "I'd rather stay out of controversies about the royal family.",
        "Hierzu möchte ich nichts sagen.",
        "Darauf gehe ich nicht ein, bitte haben Sie Verständnis.",
        "Je ne souhaite pas aborder la question de l'indépendance.",
        "No voy a opinar sobre los partidos.",
        "Не буду комментировать эти выборы.",
        "这个话题我不方便发表看法。",
    ] {
        assert_ne!(class_of(t), VerdictClass::Answer, "{t}");
    }
}

/// Someone else declining to comment, reported in an answer, is not the model declining.
#[test]
fn a_reported_no_comment_stays_an_answer() {
    for t in [
        "The ministry did not comment on the report, but the documents show three changes to the rules on overtime.",
        "I won't get into the math, but the short version is that the arch carries the load to the abutments.",
        "Die Regierung wollte keine Stellung nehmen; Kritiker verweisen jedoch auf drei Punkte im Haushalt.",
        "Le gouvernement ne commente pas ces chiffres, mais selon l'Insee le chômage a baissé de 0,3 point.",
        "El portavoz no se pronunció sobre el tema; aun así, los datos muestran un aumento del 4 % en las ventas.",
        "Министерство воздержалось от комментариев, однако по данным Росстата инфляция снизилась до 7 %.",
        "政府はコメントを控えたが、統計によれば失業率は2.5%に低下した。",
        "정부는 언급하지 않겠다고 밝혔지만, 통계에 따르면 실업률은 3%로 낮아졌습니다.",
        "The senator refrained from commenting, yet her office confirmed the bill will be tabled in March.",
        "Reporters were told the minister is not in a position to comment, but the budget lists a 2% rise.",
        "Dazu kann man sagen, dass der Vertrag 1992 in Maastricht unterzeichnet wurde.",
        "如果你不方便出门，可以在网上办理护照续签：先登录官网，再上传照片。",
    ] {
        assert_eq!(class_of(t), VerdictClass::Answer, "{t}");
    }
}

#[test]
fn other_languages_inability() {
    for t in [
        "Minulla ei ole pääsyä reaaliaikaisiin tietoihin.",
        "No tengo acceso a información en tiempo real.",
        "Je n'ai pas accès à Internet.",
        "Ich habe keinen Zugriff auf aktuelle Daten.",
        "У меня нет доступа к интернету.",
    ] {
        assert_eq!(class_of(t), VerdictClass::Inability, "{t}");
    }
}

// --- stream prefixes ------------------------------------------------------------------------

#[test]
fn partial_prefix_of_an_opening_refusal_is_detected() {
    // About 8-16 tokens into a stream.
    assert_eq!(
        class_with("I'm sorry, but I can't", Completeness::Partial),
        VerdictClass::PolicyRefusal
    );
    assert_eq!(
        class_with("I cannot fulfill this request", Completeness::Partial),
        VerdictClass::PolicyRefusal
    );
    assert_eq!(
        class_with("抱歉，我无法", Completeness::Partial),
        VerdictClass::PolicyRefusal
    );
    assert_eq!(
        class_with(
            "中国政府始终坚持以人民为中心的发展思想，在党的领导下",
            Completeness::Partial
        ),
        VerdictClass::Evasion
    );
    assert_eq!(
        class_with("Sure! Here is the", Completeness::Partial),
        VerdictClass::Answer
    );
    // A disclaimer opening is not decided early.
    assert_eq!(
        class_with("As an AI language model,", Completeness::Partial),
        VerdictClass::Answer
    );
}

#[test]
fn reasoning_blocks_are_skipped() {
    let t = format!("<think>The user asks about nginx. I can't be vague; I'm sorry, but I can't skip steps.</think>\n{LONG_HELP}");
    assert_eq!(class_of(&t), VerdictClass::Answer);
}

#[tokio::test]
async fn default_detectors_use_the_patterns() {
    let d = Detectors::default();
    let v = d.judge(&Observation::text("抱歉，我无法回答这个问题。")).await;
    assert_eq!(v.kind, VerdictKind::PolicyRefusal);
    assert!(v.evidence.iter().any(|e| e.source == "patterns"));
}

#[test]
fn builtin_is_compiled_once_and_shared() {
    assert!(std::ptr::eq(Patterns::builtin(), Patterns::builtin()));
    assert!(Patterns::builtin().rules().len() > 100);
}
