//! Compile tests of the DSL macros (trybuild): each `pass` file compiles and runs; each `fail` file is
//! one kind of mistake, and its `.stderr` pins the message and the span. Regenerate with
//! `TRYBUILD=overwrite cargo test --test ui` (on the pinned toolchain) and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/reward/pass/*.rs");
    t.compile_fail("tests/ui/reward/fail/*.rs");
    t.pass("tests/ui/noise_schedule/pass/*.rs");
    t.compile_fail("tests/ui/noise_schedule/fail/*.rs");
    t.pass("tests/ui/estimator/pass/*.rs");
    t.compile_fail("tests/ui/estimator/fail/*.rs");
    t.pass("tests/ui/policy/pass/*.rs");
    t.compile_fail("tests/ui/policy/fail/*.rs");
}
