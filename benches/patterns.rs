//! Throughput of the synchronous pattern scan on answers of 1 KB and 8 KB, English and
//! Chinese, helpful and refusing (the goal: at least 100k answers per second per core at
//! 1 KB).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use refusal_guard::detect::patterns::Patterns;

const EN: &str = "Here is how to set up a reverse proxy with nginx. First, install the package from your \
distribution's repositories and enable the service. Then create a server block that listens on port 80 and \
forwards requests to the upstream application with proxy_pass, setting the Host and X-Forwarded-For headers. ";
const ZH: &str =
    "要在 Linux 上设置 nginx 反向代理，首先安装软件包并启用服务。然后创建一个监听 80 端口的 server 块，\
用 proxy_pass 把请求转发给后端应用，并设置 Host 与 X-Forwarded-For 头。重新加载配置后用 curl 测试。";

/// `seed` repeated to about `bytes` bytes, opened by `opening`.
fn answer(opening: &str, seed: &str, bytes: usize) -> String {
    let mut s = opening.to_string();
    while s.len() < bytes {
        s.push_str(seed);
    }
    s
}

fn bench(c: &mut Criterion) {
    let p = Patterns::builtin();
    let mut g = c.benchmark_group("patterns_scan");
    for size in [1024usize, 8192] {
        let cases = [
            ("en_answer", answer("", EN, size)),
            (
                "en_refusal",
                answer("I'm sorry, but I can't help with that. However, ", EN, size),
            ),
            ("zh_answer", answer("", ZH, size)),
            ("zh_refusal", answer("抱歉，我无法回答这个问题。不过，", ZH, size)),
        ];
        for (name, text) in cases {
            g.throughput(Throughput::Elements(1));
            g.bench_with_input(BenchmarkId::new(name, size), &text, |b, t| {
                b.iter(|| p.scan(black_box(t)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
