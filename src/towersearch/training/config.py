"""The options of a training run: one typed dataclass, whose fields and help text are also the ``train`` command's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from towersearch.encoders.bf16 import PRECISIONS as ARITHMETIC
from towersearch.errors import ConfigError
from towersearch.model import text_config_dict
from towersearch.text import TextConfig
from towersearch.training.pairs import PairConfig
from towersearch.training.ranking import RankerConfig
from towersearch.training.towers import check_towers

LOSS_DIRECTIONS = {
    "query_to_doc": ("query_to_doc",),
    "symmetric": ("query_to_doc", "doc_to_query"),
    "all": ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"),
}

PRECISIONS = ("auto", *ARITHMETIC)
"""Training precisions: the encoders' arithmetic, or auto (bf16 where the device computes it natively)."""
INTERPOLATION_BY = ("dense", "hybrid")
"""What may choose the merge weight (:func:`~towersearch.training.validation.choose_interpolation`)."""


@dataclass
class TrainConfig:
    """Options of ``towersearch train``.

    Each field of a simple type is a flag of the same name (``max_steps`` is ``--max-steps``), with its default and
    help; so are those of ``text`` and ``pairs``, and those of ``ranker`` with a ``ranker-`` prefix
    (``--ranker-share``; ``enabled`` is ``--ranker/--no-ranker``). ``progress`` follows ``--json``, and
    ``pairs.seed`` follows ``--seed``.
    """

    towers: str = field(default="distinct", metadata={"help": "shared (one Siamese encoder) or distinct towers."})
    freeze_product_tower: bool = field(
        default=False,
        metadata={
            "help": "Train the query tower alone (distinct towers): the product tower keeps the weights training "
            "started from (the base model, or the init model), so the catalogue needs no re-encoding (query-side "
            "fine-tuning)."
        },
    )
    cascade: bool = field(
        default=True, metadata={"help": "Two stages: shared on all positives, then towers on high-quality ones."}
    )
    max_steps: int | None = field(default=600, metadata={"help": "Optimiser steps of the whole run, all stages."})
    epochs: float | None = field(
        default=None,
        metadata={"help": "Cap each stage at this many epochs of its data (default: no cap, or 1 without max_steps)."},
    )
    stage1_share: float = field(default=0.6, metadata={"help": "Share of max_steps given to stage 1 (cascade)."})
    batch_size: int = field(default=32, metadata={"help": "Pairs per batch: more in-batch negatives help."})
    cached_loss: bool = field(
        default=False,
        metadata={"help": "Use CachedMultipleNegativesRankingLoss (large batches in bounded memory)."},
    )
    mini_batch_size: int = field(default=32, metadata={"help": "Mini-batch of the cached loss."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Stage-1 (or single-stage) learning rate."})
    stage2_learning_rate: float = field(default=2e-5, metadata={"help": "Stage-2 learning rate (lower)."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Linear warm-up share of each stage."})
    scale: float = field(default=20.0, metadata={"help": "Similarity scale (1 / temperature) of the loss."})
    hardness_strength: float = field(
        default=5.0,
        metadata={"help": "Self-adversarial weight α of in-batch negatives (0 = the vanilla loss)."},
    )
    lexical_residual: float = field(
        default=0.0,
        metadata={
            "help": "Train the towers on what BM25 misses (CLEAR's lexical residual): BM25's score of every "
            "(query, product) pair of a batch, divided by the query's best BM25 score in the catalogue, is added "
            "to their cosine times this weight inside the loss, so pairs BM25 already ranks right teach little "
            "and products BM25 wrongly favours teach more (0 = off)."
        },
    )
    loss_directions: str = field(
        default="query_to_doc",
        metadata={
            "help": "Contrasts of the in-batch loss: query_to_doc (each query picks its product), symmetric (each "
            "product also picks its query among the batch's queries), or all (also query-query and "
            "product-product, as GTE trains)."
        },
    )
    guided_negatives: bool | None = field(
        default=None,
        metadata={
            "help": "Mask in-batch negatives the base model scores above the positive (GISTEmbedLoss, with the "
            "base model as guide) instead of weighting them; self-adversarial weighting does not apply. "
            "Default: on when training without a log (synthetic queries such as 'cookies' have many right "
            "answers, so in-batch negatives are often false ones), off with a log."
        },
    )
    hard_negatives: int = field(default=1, metadata={"help": "Hard negatives per high-quality pair (0 = off)."})
    negative_source: str = field(
        default="both",
        metadata={
            "help": "Where mined hard negatives come from: model (the stage-1 towers' nearest products), bm25 "
            "(BM25's top products for the query that are not its positives: teaches the towers what the lexical "
            "side of hybrid search gets wrong), or both (hard_negatives from each)."
        },
    )
    stage1_negatives: bool = field(
        default=False,
        metadata={
            "help": "Give stage 1's log positives hard negatives from BM25 too (cascade; the model's own nearest "
            "products need trained towers, so they stay in stage 2). hard_negatives per pair; 0 turns this off."
        },
    )
    logged_negatives: bool = field(
        default=False,
        metadata={
            "help": "Take a query's hard negatives first from products shown for it and never engaged with "
            "(impressions without a click); mined ones fill in for queries without any."
        },
    )
    shown_not_negative: bool = field(
        default=False,
        metadata={
            "help": "Never take a product shown for the query and passed over (an impression without a click) as a "
            "mined or BM25 hard negative: it was good enough to be shown, and is often partly relevant."
        },
    )
    negative_margin: float = field(
        default=0.05,
        metadata={"help": "Relative margin: a negative must score this share below the positive (skips near-dupes)."},
    )
    negative_range: int = field(default=50, metadata={"help": "Mine negatives among this many nearest products."})
    negative_skip: int = field(
        default=0,
        metadata={"help": "Skip this many nearest products when mining (unlabelled ones there are often relevant)."},
    )
    interpolation: float | None = field(
        default=None,
        metadata={
            "help": "Weight of the trained towers when merged back with the weights training started from "
            "(WiSE-FT: start + w × (trained − start); 1 = as trained). Default: chosen among 1, 0.75 and 0.5 "
            "on the held-out log queries, 0.5 without any."
        },
    )
    interpolation_by: str = field(
        default="dense",
        metadata={
            "help": "What chooses the merge weight on the held-out log queries: 'dense' (the towers alone) or "
            "'hybrid' (the towers fused with BM25, the best fusion the calibration tries per weight). 'hybrid' "
            "gained on Home Depot (hybrid 0.4355 -> 0.4384) and lost on the demo store (ranked 0.8837 -> 0.8700)."
        },
    )
    feedback: float | None = field(
        default=None,
        metadata={
            "help": "Weight of pseudo-relevance feedback in dense search (a query's vector moves towards the mean "
            "of the 3 products it finds first, then searches again; 0 = off), saved with the model. Default: "
            "0.5 or 0 as the held-out log queries' dense NDCG@10 says (0 on a tie), 0.5 without any."
        },
    )
    min_stage2_pairs: int = field(
        default=1000,
        metadata={
            "help": "Below this many high-quality pairs, stage 2 trains on converted ones, or else all positives."
        },
    )
    max_seq_length: int = field(default=64, metadata={"help": "Token limit of each text."})
    precision: str = field(
        default="auto",
        metadata={
            "help": "Arithmetic of the training steps: fp32, or bf16 (mixed precision: bf16 autocast, fp32 weights "
            "and optimiser). auto = bf16 where the device computes it natively (a CPU with AVX-512 BF16 or AMX, a "
            "GPU that supports it), else fp32."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed for sampling, shuffling and initialisation."})
    spelling: bool = field(
        default=True,
        metadata={
            "help": "BM25's query spelling in training (its hard negatives, the fusion calibration and the ranking "
            "stage's features), as an index serves by default."
        },
    )
    validation_queries: int = field(
        default=200,
        metadata={"help": "Log queries held out of training to check the model and calibrate hybrid fusion (0 = off)."},
    )
    validation_share: float = field(default=0.1, metadata={"help": "Hold out at most this share of the queries."})
    checkpoint_steps: int = field(default=200, metadata={"help": "Save a resumable checkpoint every N steps."})
    resume: bool = field(default=False, metadata={"help": "Resume from the checkpoints of an interrupted run."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})
    onnx: bool = field(
        default=True, metadata={"help": "Export the towers to ONNX (fp32 and int8) beside the saved model."}
    )
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, … (default: cuda when there is one)."})
    text: TextConfig = field(default_factory=TextConfig, metadata={"help": "Product and query text."})
    pairs: PairConfig = field(default_factory=PairConfig, metadata={"help": "Positive mining and cold start."})
    ranker: RankerConfig = field(default_factory=RankerConfig, metadata={"help": "The learned ranking stage."})

    def __post_init__(self) -> None:
        check_towers(self.towers)
        if self.freeze_product_tower and self.towers != "distinct":
            raise ConfigError("freeze_product_tower needs distinct towers (a shared encoder is one tower)")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs}")
        if not 0.0 < self.stage1_share < 1.0:
            raise ConfigError(f"stage1_share must be between 0 and 1 (exclusive), got {self.stage1_share}")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be >= 2 (in-batch negatives need company), got {self.batch_size}")
        if self.hardness_strength < 0:
            raise ConfigError(f"hardness_strength must be >= 0, got {self.hardness_strength}")
        if self.lexical_residual < 0:
            raise ConfigError(f"lexical_residual must be >= 0, got {self.lexical_residual}")
        if self.lexical_residual and (
            self.loss_directions != "query_to_doc" or self.guided_negatives or self.cached_loss
        ):
            raise ConfigError(
                "lexical_residual works with loss_directions=query_to_doc, without guided negatives or the cached loss"
            )
        if self.loss_directions not in LOSS_DIRECTIONS:
            raise ConfigError(
                f"loss_directions must be one of {', '.join(LOSS_DIRECTIONS)}, got {self.loss_directions!r}"
            )
        if self.negative_source not in ("model", "bm25", "both"):
            raise ConfigError(f"negative_source must be model, bm25 or both, got {self.negative_source!r}")
        if self.hard_negatives < 0:
            raise ConfigError(f"hard_negatives must be >= 0, got {self.hard_negatives}")
        if self.learning_rate <= 0 or self.stage2_learning_rate <= 0:
            raise ConfigError("learning rates must be > 0")
        if not 0 <= self.negative_skip < self.negative_range:
            raise ConfigError(
                f"negative_skip must be >= 0 and below negative_range ({self.negative_range}), got {self.negative_skip}"
            )
        if self.feedback is not None and self.feedback < 0:
            raise ConfigError(f"feedback must be >= 0, got {self.feedback}")
        if self.interpolation is not None and not 0.0 <= self.interpolation <= 1.0:
            raise ConfigError(f"interpolation must be between 0 and 1, got {self.interpolation}")
        if self.interpolation_by not in INTERPOLATION_BY:
            raise ConfigError(
                f"interpolation_by must be one of {', '.join(INTERPOLATION_BY)}, got {self.interpolation_by!r}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.max_seq_length < 8:
            raise ConfigError(f"max_seq_length must be >= 8, got {self.max_seq_length}")

    def as_dict(self) -> dict[str, Any]:
        """The options as plain JSON-ready values (for the training summary)."""
        d = asdict(self)
        d["text"] = text_config_dict(self.text)
        return d
