//! Bytes the samplers move between the device and the host, counted per thread.
//!
//! Every copy the reverse chain makes of a device tensor to the host goes through one function, which
//! adds `numel · size_of::<E>()` to this thread's device → host counter; every constant it uploads (the
//! step rules' coefficient tables) adds its size to the host → device counter. The model's own copies (a
//! head reading its token ids back, say) are not the sampler's and are not counted. The counters are
//! thread-local, so concurrent samplers (tests run in parallel) do not see each other's traffic.
//! `examples/bench.rs --traffic` reads them; docs/sampling.md gives the per-step figures.

use std::cell::Cell;

use dfdx::prelude::*;

use crate::nn::to_f64s;

thread_local! {
    static TO_HOST: Cell<u64> = const { Cell::new(0) };
    static TO_DEVICE: Cell<u64> = const { Cell::new(0) };
}

/// Device → host and host → device byte counts of the samplers on the calling thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes copied from the device to the host (`Σ numel · size_of::<E>()` of the fetched tensors).
    pub to_host: u64,
    /// Bytes of constants uploaded from the host to the device (in the model's element type).
    pub to_device: u64,
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;

    /// The traffic between two readings (`later − earlier`).
    fn sub(self, earlier: Traffic) -> Traffic {
        Traffic {
            to_host: self.to_host - earlier.to_host,
            to_device: self.to_device - earlier.to_device,
        }
    }
}

/// The counters of the calling thread since it started (or since [`reset`]).
pub fn read() -> Traffic {
    Traffic {
        to_host: TO_HOST.with(Cell::get),
        to_device: TO_DEVICE.with(Cell::get),
    }
}

/// Sets the calling thread's counters to 0.
pub fn reset() {
    TO_HOST.with(|c| c.set(0));
    TO_DEVICE.with(|c| c.set(0));
}

/// Copies `tensor` to the host as `f64`, counting `numel · size_of::<E>()` bytes device → host.
pub(crate) fn fetch<S: Shape, E: Dtype, D: Device<E>, T>(tensor: &Tensor<S, E, D, T>) -> Vec<f64> {
    let host = tensor.as_vec();
    add_to_host(host.len() * std::mem::size_of::<E>());
    to_f64s(&host)
}

/// Counts `values` elements of type `E` uploaded host → device.
pub(crate) fn uploaded<E>(values: usize) {
    let bytes = (values * std::mem::size_of::<E>()) as u64;
    TO_DEVICE.with(|c| c.set(c.get() + bytes));
}

fn add_to_host(bytes: usize) {
    TO_HOST.with(|c| c.set(c.get() + bytes as u64));
}
