//! Compile-fail tests of the DSL macros (trybuild): each `fail` file is one kind of mistake, and its
//! `.stderr` pins the message and the span. The `pass` files under tests/ui/*/pass compile and run as
//! modules of tests/dsl_pass.rs, so trybuild only type-checks (`cargo check`, no code generation of the
//! dependency tree in its own target directory). Regenerate with `TRYBUILD=overwrite cargo test --test ui`
//! (on the pinned toolchain) and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/reward/fail/*.rs");
    t.compile_fail("tests/ui/noise_schedule/fail/*.rs");
    t.compile_fail("tests/ui/estimator/fail/*.rs");
    t.compile_fail("tests/ui/policy/fail/*.rs");
}
