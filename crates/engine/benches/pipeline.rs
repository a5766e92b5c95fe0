//! In-process figures for the trade workload: each stage of a pipeline, and the whole
//! `Pipeline::process`, measured on the ~0.7 KB reference trade.
//!
//! Every group also measures `serde_json::from_slice::<serde_json::Value>` of the same bytes.
//! That is the floor: no engine stage can do less than read the document once, so each figure
//! is meaningful as a multiple of it, and measuring it inside every group keeps the ratio
//! honest on a noisy machine (both figures are taken minutes apart at most). The target is a
//! whole pipeline within 3x the floor; `docs/benchmarks.md` records the results.
//!
//! The workload is embedded from `examples/trade/`, the repository's copy of the shared trade
//! workload, so the bench builds from a checkout alone.
//!
//! Run with `cargo bench -p engine --bench pipeline`.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use engine::transform::{from_val, to_val};
use engine::{
    Doc, Encoding, Limits, Outcome, OutputMode, Part, Pipeline, PipelineSpec, Resolved, Schema,
    SchemaOptions, Transform, Value, encode, parse_document,
};

/// The service's allocator (`crates/assay/src/main.rs`). Under glibc's malloc a trade's
/// `Pipeline::process` takes a third more instructions (callgrind: 121k against 91k), which
/// the service never pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TRADE: &str = include_str!("../../../examples/trade/trade.json");
const INPUT_SCHEMA: &str = include_str!("../../../examples/trade/input.schema.json");
/// The same constraints written with `$defs`, `$ref`, `allOf`, `anyOf` and `oneOf`.
const INPUT_MODULAR_SCHEMA: &str =
    include_str!("../../../examples/trade/input-modular.schema.json");
const OUTPUT_SCHEMA: &str = include_str!("../../../examples/trade/output.schema.json");
const TRANSFORM: &str = include_str!("../../../examples/trade/transform.jq");

/// The bytes a client sends: the file without its trailing newline, as one NDJSON line.
fn trade_bytes() -> &'static [u8] {
    TRADE.trim_end().as_bytes()
}

/// Everything compiled once, as a server would hold it.
struct Workload {
    bytes: &'static [u8],
    limits: Limits,
    doc: Value,
    input: Schema,
    input_modular: Schema,
    output: Schema,
    transform: Transform,
    /// The transform's result for `doc`, the input of the output schema and of the encoder.
    result: Value,
    pipeline: Pipeline,
}

impl Workload {
    fn new() -> Self {
        let bytes = trade_bytes();
        let limits = Limits::default();
        let doc = parse_document(bytes, &limits).expect("trade.json parses");
        let schema = |text: &str| {
            let value: Value = serde_json::from_str(text).expect("schema is JSON");
            Schema::compile(&value, &SchemaOptions::default()).expect("schema compiles")
        };
        let input = schema(INPUT_SCHEMA);
        let input_modular = schema(INPUT_MODULAR_SCHEMA);
        let output = schema(OUTPUT_SCHEMA);
        let transform = Transform::compile(TRANSFORM, OutputMode::One).expect("transform compiles");
        assert!(
            transform.is_direct(),
            "the trade transform left the direct evaluator"
        );
        let result = transform
            .run(&doc, limits.transform_timeout)
            .expect("transform runs");
        // A bench of the rejection path would measure something else: make sure every stage
        // accepts, so that each figure is the work done for a good document.
        assert!(input.is_valid(&doc), "trade.json fails the input schema");
        assert!(
            input_modular.is_valid(&doc),
            "trade.json fails the modular input schema"
        );
        assert!(
            output.is_valid(&result),
            "the result fails the output schema"
        );

        let description = serde_json::json!({
            "input_schema": "input.schema.json",
            "transform": "transform.jq",
            "output_schema": "output.schema.json",
            "output": "json",
        });
        let spec = PipelineSpec::from_document(&description, |part, name| match (part, name) {
            (Part::Schema, "input.schema.json") => Ok(Resolved::Schema(
                serde_json::from_str(INPUT_SCHEMA).unwrap(),
            )),
            (Part::Schema, "output.schema.json") => Ok(Resolved::Schema(
                serde_json::from_str(OUTPUT_SCHEMA).unwrap(),
            )),
            (Part::Transform, "transform.jq") => Ok(Resolved::Program(TRANSFORM.to_owned())),
            _ => Err(format!("no {name} in the bench")),
        })
        .expect("pipeline description is valid");
        let pipeline = Pipeline::compile(&spec).expect("pipeline compiles");
        let mut out = Vec::new();
        let outcome = pipeline
            .process(bytes, None, &mut out)
            .expect("pipeline runs");
        assert_eq!(
            outcome,
            Outcome::Accepted(()),
            "the pipeline rejects trade.json"
        );

        Self {
            bytes,
            limits,
            doc,
            input,
            input_modular,
            output,
            transform,
            result,
            pipeline,
        }
    }
}

/// A group measured in bytes of input, with the serde_json floor as its first member.
fn group<'c>(c: &'c mut Criterion, name: &str, w: &Workload) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(w.bytes.len() as u64));
    let bytes = w.bytes;
    g.bench_function("serde_json_floor", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(bytes)).unwrap())
    });
    g
}

fn benches(c: &mut Criterion) {
    let w = Workload::new();

    let mut g = group(c, "parse", &w);
    g.bench_function("engine_parse_document", |b| {
        b.iter(|| parse_document(black_box(w.bytes), &w.limits).unwrap())
    });
    g.bench_function("doc_parse", |b| {
        b.iter(|| Doc::parse_bytes(black_box(w.bytes), &w.limits).unwrap())
    });
    g.finish();

    let mut g = group(c, "validate", &w);
    g.bench_function("input_is_valid", |b| {
        b.iter(|| w.input.is_valid(black_box(&w.doc)))
    });
    let doc = Doc::parse_bytes(w.bytes, &w.limits).expect("trade.json parses");
    g.bench_function("input_is_valid_doc", |b| {
        b.iter(|| w.input.is_valid_doc(black_box(doc.root())))
    });
    g.bench_function("input_modular_is_valid_doc", |b| {
        b.iter(|| w.input_modular.is_valid_doc(black_box(doc.root())))
    });
    // What the validate endpoint does: read the document, validate it.
    g.bench_function("parse_and_validate", |b| {
        b.iter(|| {
            let doc = parse_document(black_box(w.bytes), &w.limits).unwrap();
            w.input.is_valid(&doc)
        })
    });
    g.bench_function("parse_and_validate_doc", |b| {
        b.iter(|| {
            let doc = Doc::parse_bytes(black_box(w.bytes), &w.limits).unwrap();
            w.input.is_valid_doc(doc.root())
        })
    });
    // Not part of the input stage, but the other half of the validation a pipeline does.
    g.bench_function("output_is_valid", |b| {
        b.iter(|| w.output.is_valid(black_box(&w.result)))
    });
    g.finish();

    let mut g = group(c, "transform", &w);
    g.bench_function("transform_run", |b| {
        b.iter(|| {
            w.transform
                .run(black_box(&w.doc), w.limits.transform_timeout)
                .unwrap()
        })
    });
    // The same run reading the trade as a `Doc`, as `Pipeline::process` does.
    let doc = Doc::parse_bytes(w.bytes, &w.limits).expect("trade.json parses");
    g.bench_function("transform_run_doc", |b| {
        b.iter(|| {
            w.transform
                .run_doc(black_box(doc.root()), w.limits.transform_timeout)
                .unwrap()
        })
    });
    // The same program with jaq evaluating it, as every run did before the direct evaluator:
    // the reference for `transform_run` (which takes the direct evaluator for this program).
    let jaq_only = w.transform.clone().jaq_only();
    g.bench_function("transform_run_jaq", |b| {
        b.iter(|| {
            jaq_only
                .run(black_box(&w.doc), w.limits.transform_timeout)
                .unwrap()
        })
    });
    // The conversions at the edges of a jaq run, measured apart to show what the jq program
    // itself costs there.
    g.bench_function("to_val_input", |b| b.iter(|| to_val(black_box(&w.doc))));
    let result_val = to_val(&w.result);
    g.bench_function("from_val_result", |b| {
        b.iter(|| from_val(black_box(&result_val)).unwrap())
    });
    g.finish();

    let mut g = group(c, "encode", &w);
    let mut out = Vec::with_capacity(4096);
    g.bench_function("engine_encode_json", |b| {
        b.iter(|| {
            out.clear();
            encode(black_box(&w.result), Encoding::Json, &mut out).unwrap();
        })
    });
    g.finish();

    let mut g = group(c, "pipeline", &w);
    g.bench_function("pipeline_process", |b| {
        b.iter(|| {
            out.clear();
            w.pipeline
                .process(black_box(w.bytes), None, &mut out)
                .unwrap()
        })
    });
    // The three middle stages without parse and encode, to split the whole.
    g.bench_function("pipeline_run_parsed", |b| {
        b.iter(|| w.pipeline.run(black_box(&w.doc)).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = pipeline;
    // Short runs: the whole file stays under three minutes on two shared cores.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = benches
}
criterion_main!(pipeline);
