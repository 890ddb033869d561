"""The compress stage: low-rank factorization of Keras models, rank choice, fine-tuning.

Entry point: `compress(model, data, **options) -> (model, report)` (also exported as
`toolchain.compress`). Modules, from the bottom up:

- `matrix`: SVD, semi-NMF, energy and VBMF ranks of one matrix (numpy only)
- `conv`: Tucker-2, CP and spatial SVD of a Conv2D kernel (TensorLy)
- `layers`: which layers can be factored, the Keras layers that replace them, their cost
- `graph`: rebuilding Sequential and functional models, batch-norm folding
- `ranks`, `budget`: explicit/energy/VBMF ranks, `auto`, and the budget search
- `narrow`: `--method narrow`, fewer whole hidden units (not low-rank: where ranks would be bottlenecks)
- `finetune`: evaluation and Keras fine-tuning (with optional distillation)
- `pipeline`: `compress` itself; `report`: the table and the Pareto plot; `cli`: the command
"""

from toolchain.compress.pipeline import compress

__all__ = ["compress"]
