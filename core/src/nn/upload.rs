//! Host-to-device uploads that report failure instead of panicking.
//!
//! dfdx's `tensor_from_vec` unwraps its `try_` twin, so a wrong-length buffer or a failed device
//! allocation aborts the caller. Library code uploads through these helpers instead: a buffer whose
//! length is not the shape's element count is an [`Error::ShapeMismatch`], and a backend failure is an
//! [`Error::Device`]; both name the operation (`what`).

use dfdx::prelude::*;
use dfdx::tensor::TensorFromVec;

use super::from_f64s;
use crate::{Error, Result};

/// Uploads `values` as a tensor of `shape` on `dev`.
///
/// Needs `values.len() = ∏ shape` (else [`Error::ShapeMismatch`] with `op = what`); a backend failure is
/// [`Error::Device`] with `op = what`. Works for any element type dfdx stores, `usize` token ids
/// included.
pub fn upload<E: Unit, D: TensorFromVec<E>, S: Shape>(
    dev: &D,
    values: Vec<E>,
    shape: S,
    what: &'static str,
) -> Result<Tensor<S, E, D>> {
    if values.len() != shape.num_elements() {
        return Err(Error::ShapeMismatch {
            op: what,
            expected: shape.concrete().into(),
            got: vec![values.len()],
        });
    }
    dev.try_tensor_from_vec(values, shape)
        .map_err(Error::device(what))
}

/// Uploads host `f64` values converted to the element type `E` (exact for f64, rounded to nearest for
/// f32), with [`upload`]'s checks.
pub fn upload_f64s<E: Dtype, D: TensorFromVec<E>, S: Shape>(
    dev: &D,
    values: &[f64],
    shape: S,
    what: &'static str,
) -> Result<Tensor<S, E, D>> {
    upload(dev, from_f64s::<E>(values), shape, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_exact_values_in_row_major_order() {
        let dev = Cpu::default();
        let t = upload(
            &dev,
            vec![3usize, 1, 4, 1, 5, 9],
            (2usize, 3usize),
            "test ids",
        )
        .unwrap();
        assert_eq!(t.shape(), &(2, 3));
        assert_eq!(t.as_vec(), vec![3, 1, 4, 1, 5, 9]);
        let x: Tensor<(usize,), f32, Cpu> =
            upload_f64s(&dev, &[0.5, -2.0], (2usize,), "test").unwrap();
        assert_eq!(x.as_vec(), vec![0.5f32, -2.0]);
        // 0.1 is not an f32: the conversion rounds to nearest, as `as f32` does.
        let y: Tensor<(usize,), f32, Cpu> = upload_f64s(&dev, &[0.1], (1usize,), "test").unwrap();
        assert_eq!(y.as_vec(), vec![0.1f64 as f32]);
    }

    #[test]
    fn wrong_length_is_a_shape_error_not_a_panic() {
        let dev = Cpu::default();
        let short = upload(&dev, vec![1.0f64; 5], (2usize, 3usize), "short buffer");
        match short {
            Err(Error::ShapeMismatch { op, expected, got }) => {
                assert_eq!(op, "short buffer");
                assert_eq!(expected, vec![2, 3]);
                assert_eq!(got, vec![5]);
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
        let long = upload_f64s::<f32, _, _>(&dev, &[0.0; 7], (2usize, 3usize), "long buffer");
        assert!(matches!(
            long,
            Err(Error::ShapeMismatch {
                op: "long buffer",
                ..
            })
        ));
        let empty_shape = upload(&dev, vec![0usize], (0usize, 4usize), "empty");
        assert!(matches!(empty_shape, Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn empty_buffer_for_empty_shape_is_fine() {
        let dev = Cpu::default();
        let t = upload(&dev, Vec::<usize>::new(), (0usize, 4usize), "empty").unwrap();
        assert_eq!(t.shape(), &(0, 4));
    }
}
