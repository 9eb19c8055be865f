//! The `pass` cases of the DSL macros (tests/ui/*/pass): each file must compile and its `main` run
//! without panicking. They are ordinary modules of this test crate rather than trybuild `pass` cases, so
//! they compile in the suite's own build; trybuild (tests/ui.rs) then only type-checks the `fail` cases,
//! which needs no code generation of the dependency tree in its separate target directory.

#[rustfmt::skip]
#[path = "ui/estimator/pass/mixtures.rs"]
mod estimator_mixtures;

#[test]
fn estimator_mixtures_compiles_and_runs() {
    estimator_mixtures::main();
}

#[rustfmt::skip]
#[path = "ui/noise_schedule/pass/cosine.rs"]
mod noise_schedule_cosine;

#[test]
fn noise_schedule_cosine_compiles_and_runs() {
    noise_schedule_cosine::main();
}

#[rustfmt::skip]
#[path = "ui/noise_schedule/pass/functions.rs"]
mod noise_schedule_functions;

#[test]
fn noise_schedule_functions_compiles_and_runs() {
    noise_schedule_functions::main();
}

#[rustfmt::skip]
#[path = "ui/policy/pass/policies.rs"]
mod policy_policies;

#[test]
fn policy_policies_compiles_and_runs() {
    policy_policies::main();
}

#[rustfmt::skip]
#[path = "ui/policy/pass/single_loop.rs"]
mod policy_single_loop;

#[test]
fn policy_single_loop_compiles_and_runs() {
    policy_single_loop::main();
}

#[rustfmt::skip]
#[path = "ui/reward/pass/batched.rs"]
mod reward_batched;

#[test]
fn reward_batched_compiles_and_runs() {
    reward_batched::main();
}

#[rustfmt::skip]
#[path = "ui/reward/pass/compose.rs"]
mod reward_compose;

#[test]
fn reward_compose_compiles_and_runs() {
    reward_compose::main();
}

#[rustfmt::skip]
#[path = "ui/reward/pass/converted_tokens.rs"]
mod reward_converted_tokens;

#[test]
fn reward_converted_tokens_compiles_and_runs() {
    reward_converted_tokens::main();
}

#[rustfmt::skip]
#[path = "ui/reward/pass/params.rs"]
mod reward_params;

#[test]
fn reward_params_compiles_and_runs() {
    reward_params::main();
}

#[rustfmt::skip]
#[path = "ui/reward/pass/range_and_name.rs"]
mod reward_range_and_name;

#[test]
fn reward_range_and_name_compiles_and_runs() {
    reward_range_and_name::main();
}

#[rustfmt::skip]
#[path = "ui/reward/pass/sequence.rs"]
mod reward_sequence;

#[test]
fn reward_sequence_compiles_and_runs() {
    reward_sequence::main();
}
