//! Chunk decoding throughput: SSE bytes in, typed `ChatCompletionChunk`s out, through
//! `ChunkDecoder` (sse-stream framing, `[DONE]` / error-event handling, serde).
//!
//! The bodies are what the mock provider streams for a realistic answer (about one token
//! per chunk, DashScope-shaped chunks), with and without per-token logprobs (5
//! alternatives each), cut into 4 KiB reads as a socket would deliver them. Throughput
//! is reported in chunks per second.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::executor::block_on;
use futures::stream::{self, StreamExt};
use refusal_guard::mock::Script;
use refusal_guard::wire::sse::ChunkDecoder;
use refusal_guard::wire::{ChatRequest, Message};

const ANSWER_EN: &str = "The Tiananmen Square protests were student-led demonstrations held in Beijing \
in 1989. They began in April, grew to include workers and residents, and were ended on the night of \
3 to 4 June when troops and tanks cleared the square. Estimates of the number of people killed range \
from several hundred to several thousand, and the event remains heavily censored in China today.";
const ANSWER_ZH: &str =
    "一九八九年春天，北京的大学生在天安门广场聚集，要求政治改革与新闻自由。抗议持续了约七周，\
并扩散到其他城市。六月三日夜间至四日凌晨，军队进入市区清场，造成大量伤亡。";

/// The SSE body the mock streams for `text`, cut into 4 KiB reads, and its chunk count.
fn body(text: &str, logprobs: bool) -> (Vec<Bytes>, u64) {
    let mut request = ChatRequest::new("qwen-plus", vec![Message::user("What happened in 1989?")]);
    if logprobs {
        request.logprobs = Some(true);
        request.top_logprobs = Some(5);
    }
    let script = Script::answer(text).with_logprobs(vec![-0.02, -0.4, -1.3, -0.001]);
    let all = script.render_stream(&request);
    // role chunk + one per piece + finish chunk ([DONE] is not a chunk).
    let chunks = script.pieces().len() as u64 + 2;
    (all.chunks(4096).map(Bytes::copy_from_slice).collect(), chunks)
}

/// Decodes every stream to its end; returns the chunks seen.
fn decode(streams: &[Vec<Bytes>]) -> u64 {
    let mut n = 0;
    for parts in streams {
        let s = stream::iter(parts.clone().into_iter().map(Ok::<_, std::io::Error>));
        let mut decoder = ChunkDecoder::new(Arc::from("bench"), 200, s);
        block_on(async {
            while let Some(item) = decoder.next().await {
                black_box(item.expect("valid stream"));
                n += 1;
            }
        });
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk_decode");
    for logprobs in [false, true] {
        // Ten answers, English and Chinese alternating, each its own stream.
        let (mut streams, mut chunks, mut bytes) = (Vec::new(), 0, 0);
        for i in 0..10 {
            let (parts, n) = body(if i % 2 == 0 { ANSWER_EN } else { ANSWER_ZH }, logprobs);
            bytes += parts.iter().map(Bytes::len).sum::<usize>();
            chunks += n;
            streams.push(parts);
        }
        assert_eq!(decode(&streams), chunks, "every chunk decodes");
        let name = if logprobs { "with_logprobs" } else { "plain" };
        eprintln!(
            "{name}: {chunks} chunks in {bytes} bytes ({} bytes/chunk)",
            bytes as u64 / chunks
        );
        group.throughput(Throughput::Elements(chunks));
        group.bench_with_input(BenchmarkId::from_parameter(name), &streams, |b, streams| {
            b.iter(|| decode(streams))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
