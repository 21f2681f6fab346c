//! The SSE decoder over arbitrary bytes, split at arbitrary points.
//!
//! The same bytes are decoded three ways: in one piece, one byte at a time, and in pieces
//! whose lengths come from a generator seeded by the bytes themselves (so every input
//! gets its own split points, and raw `.sse` fixtures work as seeds). What comes out must
//! not depend on how the bytes were split: the same chunks, then the same error (or the
//! same clean end after `[DONE]`). Every stream must end after its first error, and every
//! chunk it yields must re-serialise and re-parse to the same value.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;
use refusal_guard::wire::sse::ChunkDecoder;
use refusal_guard::wire::ChatCompletionChunk;

/// What a decoding produced: chunks as JSON, and the error (its Display) that ended it.
#[derive(Debug, PartialEq)]
struct Outcome {
    chunks: Vec<ChatCompletionChunk>,
    error: Option<String>,
}

fn decode(pieces: Vec<Bytes>, cut: bool) -> Outcome {
    let mut items: Vec<Result<Bytes, std::io::Error>> = pieces.into_iter().map(Ok).collect();
    if cut {
        items.push(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        )));
    }
    let mut decoder = ChunkDecoder::new(Arc::from("fuzz"), 200, futures::stream::iter(items));
    futures::executor::block_on(async {
        let mut out = Outcome {
            chunks: Vec::new(),
            error: None,
        };
        while let Some(item) = decoder.next().await {
            match item {
                Ok(chunk) => {
                    let json = serde_json::to_string(&chunk).expect("a decoded chunk serialises");
                    let back: ChatCompletionChunk =
                        serde_json::from_str(&json).expect("a serialised chunk parses");
                    assert_eq!(back, chunk, "chunk round trip through {json}");
                    out.chunks.push(chunk);
                }
                Err(e) => {
                    out.error = Some(e.to_string());
                    assert!(decoder.next().await.is_none(), "the stream ends after its error");
                    break;
                }
            }
        }
        // A finished decoder stays finished.
        assert!(decoder.next().await.is_none());
        out
    })
}

/// FNV-1a of the data: the seed of the split generator.
fn seed(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn random_pieces(data: &[u8]) -> Vec<Bytes> {
    let mut state = seed(data) | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state % 24) as usize + 1;
        let n = n.min(rest.len());
        out.push(Bytes::copy_from_slice(&rest[..n]));
        rest = &rest[n..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // The low bit of the last byte says whether the connection breaks after the bytes.
    let cut = data.last().is_some_and(|b| b & 1 == 1);
    let whole = decode(vec![Bytes::copy_from_slice(data)], cut);
    let bytewise = decode(data.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect(), cut);
    assert_eq!(whole, bytewise, "one piece vs one byte at a time");
    let random = decode(random_pieces(data), cut);
    assert_eq!(whole, random, "one piece vs random pieces");
});
