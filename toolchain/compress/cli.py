"""`tinyrank compress`: the command-line face of `toolchain.compress.compress`."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolchain import argtypes
from toolchain.errors import TinyrankError

EPILOG = """examples:
  tinyrank compress mlp.keras --data digits.npz --energy 0.9 --out small.keras
  tinyrank compress mlp.keras --data digits.npz --target-params 0.25 --baseline --out small.keras
  tinyrank compress cnn.keras --data digits.npz --method tucker --ranks conv2d_1=8:16 --out small.keras
  tinyrank compress cnn.keras --data digits.npz --method auto --target-params 0.3 --pareto \\
      --plot p.png --out s.keras
  tinyrank compress mlp.keras --data digits.npz --board nano33 --out small.keras --report compress.json
  tinyrank compress mlp.keras --data digits.npz --board qemu_m4 --target-latency 0.5 --out small.keras
  tinyrank compress cnn.keras --data digits.npz --board qemu_m4 --pareto --plot pareto.png --out small.keras

Factored layers: the last keeps the original name, the others get _u, _in, _core, _kh, _kw suffixes."""


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "compress",
        parents=[common],
        help="factor Dense/Conv2D layers (SVD, Tucker-2, CP, spatial SVD, semi-NMF) and fine-tune",
        description="Shrink a Keras model with low-rank factorization, choose ranks, fine-tune, report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model", type=Path, metavar="MODEL.keras", help="the trained Keras model (not modified)"
    )
    parser.add_argument(
        "--data", type=Path, required=True, metavar="DATA.npz", help="x_train, y_train[, x_test, y_test]"
    )
    parser.add_argument(
        "--method",
        default="svd",
        choices=("svd", "tucker", "cp", "spatial", "seminmf", "auto", "narrow"),
        help="factorization (default svd; svd on a k x k Conv2D is spatial SVD; auto: per layer, and with "
        "--target-params also narrowing, the lower held-out loss kept); narrow: fewer whole hidden units, "
        "started from the original's most important (with --target-params)",
    )
    ranks = parser.add_argument_group("rank choice (default: --energy 0.95)")
    ranks.add_argument(
        "--ranks",
        default=None,
        metavar="LAYER=R[:R2],...",
        help="explicit ranks, e.g. dense_1=32,conv2d_3=16:16",
    )
    ranks.add_argument(
        "--energy",
        type=argtypes.fraction,
        default=None,
        metavar="F",
        help="keep this fraction of squared singular values",
    )
    ranks.add_argument(
        "--vbmf", action="store_true", help="ranks by empirical variational Bayesian MF (Kim et al. 2016)"
    )
    ranks.add_argument(
        "--target-params",
        type=argtypes.fraction,
        default=None,
        metavar="F",
        help="budget: this fraction of the parameters",
    )
    ranks.add_argument(
        "--target-macs",
        type=argtypes.fraction,
        default=None,
        metavar="F",
        help="budget: this fraction of the MACs",
    )
    ranks.add_argument(
        "--target-latency",
        type=argtypes.fraction,
        default=None,
        metavar="F",
        help="budget: this fraction of the original's predicted cost on --board",
    )
    ranks.add_argument(
        "--max-latency-ms",
        type=argtypes.milliseconds,
        default=None,
        metavar="MS",
        help="budget: at most MS milliseconds on --board (cycles at its clock; instructions on QEMU boards)",
    )
    ranks.add_argument(
        "--board",
        default=None,
        type=argtypes.board_id,
        metavar="ID",
        help="fit this board's flash and RAM; cost layers with its core's model (see `tinyrank boards`)",
    )
    parser.add_argument(
        "--pareto", action="store_true", help="sweep parameter budgets and report accuracy against size"
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also train a same-design dense model of the compressed size from scratch, for comparison",
    )
    tuning = parser.add_argument_group("fine-tuning (on by default whenever --data is given)")
    tuning.add_argument(
        "--finetune-epochs",
        type=argtypes.count,
        default=None,
        metavar="N",
        help="at most N epochs; early stopping ends sooner (default 40; 0: no fine-tuning)",
    )
    tuning.add_argument(
        "--distill",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also match the original model's outputs (default: on)",
    )
    tuning.add_argument(
        "--qat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train the last epochs through int8 rounding, as the converter will quantize (default: on)",
    )
    tuning.add_argument(
        "--learning-rate",
        type=argtypes.learning_rate,
        default=None,
        metavar="LR",
        help="peak learning rate (default: from how far the factored model starts from the original)",
    )
    parser.add_argument(
        "--seed", type=argtypes.seed, default=0, help="random seed (decompositions, fine-tuning)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="OUT.keras", help="where to write the factored model"
    )
    parser.add_argument(
        "--plot", type=Path, default=None, metavar="P.png", help="write the --pareto plot here"
    )
    parser.set_defaults(func=run_compress, out_kind="file")


def run_compress(args: argparse.Namespace) -> dict:
    from toolchain.compress.pipeline import compress
    from toolchain.compress.report import plot_pareto, print_report
    from toolchain.data import load_dataset
    from toolchain.fileio import check_distinct
    from toolchain.models import load_keras_model, save_keras_model

    check_distinct(args.model, args.out)
    if args.plot is not None and not args.pareto:
        raise TinyrankError("--plot draws the --pareto sweep; add --pareto")
    if args.plot is not None:
        check_distinct(args.model, args.plot)
    model = load_keras_model(args.model)
    dataset = load_dataset(args.data)
    small, report = compress(
        model,
        dataset,
        method=args.method,
        ranks=args.ranks,
        energy=args.energy,
        vbmf=args.vbmf,
        target_params=args.target_params,
        target_macs=args.target_macs,
        target_latency=args.target_latency,
        max_latency_ms=args.max_latency_ms,
        board=args.board,
        pareto=args.pareto,
        baseline=args.baseline,
        finetune_epochs=args.finetune_epochs,
        distill=args.distill,
        qat=args.qat,
        learning_rate=args.learning_rate,
        seed=args.seed,
        verbose=1,
    )
    save_keras_model(small, args.out, source=args.model)
    report["input"] = str(args.model)
    report["output"] = str(args.out)
    if args.plot is not None:
        report["plot"] = str(plot_pareto(report, args.plot))
    print_report(report)
    return report
