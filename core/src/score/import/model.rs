//! [`ImportedDit`]: a published DiT (SEDD's or MDLM's) as a sepo [`ScoreModel`]: sepo's
//! [`Transformer`] trunk under the family's parameter names, then the family's output map.

use dfdx::prelude::*;

use super::config::{ImportedConfig, Output};
use crate::error::Result;
use crate::nn::kernels::Kernels;
use crate::nn::ParamStore;
use crate::score::{LogScores, ModelDescription, ModelKind, ScoreModel, Tokens, Transformer};

/// A SEDD or MDLM network: `log s = Output(Trunk(x, σ̃), x, σ̄)` with `σ̃ = σ̄`, or `0` for MDLM
/// without time conditioning ([`Output::conditions_on_sigma`]).
///
/// The trunk is SEDD's `DDiT` (MDLM's is the same module): token embedding, `silu(TimestepEmbedder(σ̃))`
/// conditioning, adaLN-Zero blocks with rotary attention, the adaLN final layer. Its parameters carry
/// SEDD's names (`blocks.0.attn_qkv.weight`, …), matrices stored `[d_in, d_out]`; the importer maps
/// torch's names and `[out, in]` layout onto them ([`super::load`]).
#[derive(Debug, Clone)]
pub struct ImportedDit<E: Dtype, D: Device<E>> {
    config: ImportedConfig,
    trunk: Transformer<E, D>,
}

impl<E: Dtype, D: Device<E>> ImportedDit<E, D> {
    /// Checks `config` ([`ImportedConfig::check`]) and builds the network, initialised from `seed`
    /// like a fresh [`Transformer`] (load weights with [`super::load`]'s functions).
    pub fn new(config: ImportedConfig, dev: &D, seed: u64) -> Result<Self> {
        config.check()?;
        Ok(Self {
            config,
            trunk: Transformer::new(config.trunk, dev, seed)?,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ImportedConfig {
        &self.config
    }

    /// The DiT trunk (raw logits, `0` at the current token).
    pub fn trunk(&self) -> &Transformer<E, D> {
        &self.trunk
    }

    /// The output map.
    pub fn output(&self) -> Output {
        self.config.output
    }
}

impl<E: Dtype, D: Kernels<E>> ScoreModel for ImportedDit<E, D> {
    type Elem = E;
    type Device = D;

    fn num_states(&self) -> usize {
        self.trunk.num_states()
    }

    fn max_len(&self) -> Option<usize> {
        self.trunk.max_len()
    }

    fn params(&self) -> &ParamStore<E, D> {
        self.trunk.params()
    }

    fn params_mut(&mut self) -> &mut ParamStore<E, D> {
        self.trunk.params_mut()
    }

    fn description(&self) -> Option<ModelDescription> {
        Some(ModelDescription::of(self))
    }

    fn forward_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<E, D, T>> {
        let zeros;
        let sigma_in = if self.config.output.conditions_on_sigma() {
            sigma_bar
        } else {
            zeros = vec![0.0; sigma_bar.len()];
            &zeros
        };
        let logits = self.trunk.forward_with(params, tokens, sigma_in, tape)?;
        self.config.output.apply(logits, tokens, sigma_bar)
    }
}

impl<E: Dtype, D: Kernels<E>> ModelKind for ImportedDit<E, D> {
    type Config = ImportedConfig;
    const NAME: &'static str = "imported_dit";
    fn config(&self) -> &Self::Config {
        &self.config
    }
    fn build(config: &Self::Config, dev: &D, seed: u64) -> Result<Self> {
        Self::new(*config, dev, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_gradient, Objective};
    use crate::score::testing::perturb;
    use crate::score::ScoreHead;

    /// `Σ w ⊙ log s` over the entries the map leaves free (`w_i = sin(0.731·i)` there, 0 on the
    /// map's constants: MDLM's `−10⁶` would swamp a central difference in f64 rounding).
    struct FreeScores {
        model: ImportedDit<f64, Cpu>,
        tokens: Vec<usize>,
        sigma: Vec<f64>,
    }

    impl Objective for FreeScores {
        fn eval<T: Tape<f64, Cpu>>(
            &self,
            store: &ParamStore<f64, Cpu>,
            tape: T,
        ) -> Tensor<Rank0, f64, Cpu, T> {
            let dev = store.device();
            let b = self.sigma.len();
            let ids = dev.tensor_from_vec(self.tokens.clone(), (b, self.tokens.len() / b));
            let out = self
                .model
                .forward_with(store, &ids, &self.sigma, tape)
                .unwrap();
            let n = self.model.num_states();
            let subs = matches!(self.model.output(), Output::MdlmSubs { .. });
            let w: Vec<f64> = (0..out.shape().num_elements())
                .map(|i| {
                    let (x, v) = (self.tokens[i / n], i % n);
                    let free = v != x && (!subs || (x == n - 1 && v != n - 1));
                    if free {
                        (i as f64 * 0.731).sin()
                    } else {
                        0.0
                    }
                })
                .collect();
            let w = dev.tensor_from_vec(w, *out.shape());
            (out * w).sum()
        }
    }

    /// A micro trunk (dim 8, 2 heads, 1 block, 8 σ features, N = 5, L = 3): finite differences over
    /// every weight stay cheap.
    fn micro(output: Output) -> ImportedConfig {
        let mut trunk = ImportedConfig::ddit(5, 3, 8, 2, 1, 8);
        trunk.freq_dim = 8;
        assert_eq!(trunk.head, ScoreHead::Uniform);
        ImportedConfig {
            trunk,
            absorbing: true,
            output,
        }
    }

    /// The output maps are differentiable where they are free (masked positions for MDLM, every
    /// off-diagonal entry for SEDD): autodiff through trunk + map matches central differences.
    #[test]
    fn gradients_through_the_output_maps_match_finite_differences() {
        let dev = Cpu::default();
        for output in [
            Output::Sedd {
                scale_by_sigma: true,
            },
            Output::MdlmSubs {
                time_conditioning: false,
            },
            Output::MdlmSubs {
                time_conditioning: true,
            },
        ] {
            let model = ImportedDit::<f64, Cpu>::new(micro(output), &dev, 5).unwrap();
            let mut store = model.params().clone();
            perturb(&mut store, 6, 0.5);
            let objective = FreeScores {
                model,
                tokens: vec![4, 1, 4, 0, 3, 4],
                sigma: vec![0.3, 1.7],
            };
            let err = check_gradient(&mut store, &objective, 1e-6);
            assert!(err < 1e-6, "{output:?}: max relative error {err}");
        }
    }

    #[test]
    fn inconsistent_configs_are_refused() {
        let mut c = micro(Output::MdlmSubs {
            time_conditioning: false,
        });
        c.absorbing = false;
        assert!(c.check().is_err(), "subs needs the mask");
        let mut c = micro(Output::Sedd {
            scale_by_sigma: false,
        });
        c.trunk.head = ScoreHead::Absorbing;
        assert!(c.check().is_err(), "the trunk gives raw logits");
    }
}
