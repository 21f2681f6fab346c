//! Audit throughput: records per second through the whole pipeline (read, parse, judge with
//! the default tier, count) over `speechmap_criticism_nonqwen.jsonl` (8650 rows) from the
//! shared datasets, on all cores.
//!
//! `cargo bench --bench audit`. Criterion reports the time per pass and, from the
//! throughput setting, records per second. Needs `../shared/datasets` (or
//! `$REFUSAL_GUARD_DATASETS`); without it the bench says so and measures nothing.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use refusal_guard::audit::{self, input, AuditOptions};
use refusal_guard::dataset::datasets_dir;

const FILE: &str = "speechmap_criticism_nonqwen.jsonl";

fn bench_audit(c: &mut Criterion) {
    let dir = match datasets_dir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("audit bench skipped: {e}");
            return;
        }
    };
    let path = dir.join(FILE).display().to_string();
    let inputs = input::resolve(&[path]).expect("the dataset file");
    let options = AuditOptions::default();
    let rows = audit::audit(&inputs, &options, |_, _| Ok(())).unwrap().records;

    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows));
    group.bench_function(FILE, |b| {
        b.iter(|| {
            let tally = audit::audit(&inputs, &options, |_, _| Ok(())).unwrap();
            assert_eq!(tally.records, rows);
            tally
        })
    });
    group.finish();
}

criterion_group!(benches, bench_audit);
criterion_main!(benches);
