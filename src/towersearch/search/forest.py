"""The ranker's boosters as one ONNX tree ensemble, evaluated by ONNX Runtime.

LightGBM's text files stay the saved ranker; this is how search scores with it. The bagged boosters become one
``TreeEnsemble`` (``ai.onnx.ml`` opset 5) whose leaf values are divided by the number of boosters, so one call gives
their mean, and ONNX Runtime walks the trees in under half LightGBM's time for a hundred candidates on one thread
(benchmarks/README, "Index and service").

The graph keeps LightGBM's decisions exactly: inputs, thresholds and leaf values are doubles (LightGBM compares and
sums in double precision), ``x <= threshold`` goes left, and a missing value goes where LightGBM sends it: the
default side for splits whose missing type is ``NaN``, the side of 0 for type ``None`` (LightGBM reads NaN as 0
there). What it cannot express (categorical splits, zero as missing, linear leaves, a transformed or averaged
output) raises :class:`UnsupportedForest`, and the ranker then predicts with LightGBM itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BRANCH_LEQ = 0  # TreeEnsemble's nodes_modes code of "x <= split goes true"
SUM = 1  # its aggregate_function code
RAW_SCORE_OBJECTIVES = ("lambdarank", "rank_xendcg", "regression")
"""Objectives whose predictions are the trees' raw sum (others transform it: sigmoid, softmax, exp)."""


class UnsupportedForest(ValueError):
    """A booster holds a tree the ONNX ensemble cannot reproduce exactly."""


class _Ensemble:
    """TreeEnsemble's node and leaf arrays, filled tree by tree."""

    def __init__(self) -> None:
        self.roots: list[int] = []
        self.features: list[int] = []
        self.splits: list[float] = []
        self.true_ids: list[int] = []
        self.true_leaf: list[int] = []
        self.false_ids: list[int] = []
        self.false_leaf: list[int] = []
        self.missing_true: list[int] = []
        self.leaf_weights: list[float] = []

    def leaf(self, value: float) -> int:
        self.leaf_weights.append(value)
        return len(self.leaf_weights) - 1

    def node(self, feature: int, split: float, missing_true: bool) -> int:
        self.features.append(feature)
        self.splits.append(split)
        self.missing_true.append(int(missing_true))
        for side in (self.true_ids, self.true_leaf, self.false_ids, self.false_leaf):
            side.append(0)
        return len(self.features) - 1

    def add_tree(self, tree: dict[str, Any], weight: float) -> None:
        """One LightGBM tree (``dump_model()['tree_info'][i]['tree_structure']``), its leaves times ``weight``."""
        if "leaf_value" in tree:  # a one-leaf tree: a split whose sides both end in the leaf
            at = self.node(0, 0.0, False)
            leaf = self.leaf(_leaf_value(tree) * weight)
            self.true_ids[at] = self.false_ids[at] = leaf
            self.true_leaf[at] = self.false_leaf[at] = 1
            self.roots.append(at)
            return
        self.roots.append(self._split(tree, weight))

    def _split(self, node: dict[str, Any], weight: float) -> int:
        if node.get("decision_type") != "<=":
            raise UnsupportedForest(f"split of type {node.get('decision_type')!r} (only numerical '<=' splits)")
        missing = node.get("missing_type", "None")
        threshold = float(node["threshold"])
        if missing == "NaN":
            missing_true = bool(node["default_left"])
        elif missing == "None":
            missing_true = 0.0 <= threshold
        else:
            raise UnsupportedForest(f"missing type {missing!r} (zero as missing)")
        at = self.node(int(node["split_feature"]), threshold, missing_true)
        for child, ids, is_leaf in (
            (node["left_child"], self.true_ids, self.true_leaf),
            (node["right_child"], self.false_ids, self.false_leaf),
        ):
            if "leaf_value" in child:
                ids[at], is_leaf[at] = self.leaf(_leaf_value(child) * weight), 1
            else:
                ids[at] = self._split(child, weight)
        return at


def _leaf_value(leaf: dict[str, Any]) -> float:
    if "leaf_coeff" in leaf:  # a linear tree's leaf is a linear model of the features, not a constant
        raise UnsupportedForest("linear trees")
    return float(leaf["leaf_value"])


def ensemble_graph(boosters: Sequence[Any]) -> bytes:
    """One ONNX model (serialised) scoring rows of doubles ``x`` (rows × the boosters' features) with the mean of
    ``boosters``' raw scores, output ``score`` (rows × 1, doubles).

    Raises:
        UnsupportedForest: a booster has a tree the ensemble cannot express exactly.
    """
    from onnx import TensorProto, helper, numpy_helper

    if not boosters:
        raise UnsupportedForest("no boosters")
    features = {int(b.num_feature()) for b in boosters}
    if len(features) != 1:
        raise UnsupportedForest(f"boosters read different numbers of features: {sorted(features)}")
    ensemble = _Ensemble()
    for booster in boosters:
        dump = booster.dump_model()
        objective = str(dump.get("objective", "")).split(" ")[0]
        if objective not in RAW_SCORE_OBJECTIVES:
            raise UnsupportedForest(f"objective {objective!r} transforms the trees' sum")
        if dump.get("num_tree_per_iteration", 1) != 1:
            raise UnsupportedForest("more than one tree per iteration")
        if dump.get("average_output"):
            raise UnsupportedForest("averaged trees (random forest mode)")
        for info in dump["tree_info"]:
            ensemble.add_tree(info["tree_structure"], 1.0 / len(boosters))

    def doubles(values: list[float]):
        return numpy_helper.from_array(np.asarray(values, dtype=np.float64))

    e = ensemble
    node = helper.make_node(
        "TreeEnsemble",
        ["x"],
        ["score"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function=SUM,
        post_transform=0,
        tree_roots=e.roots,
        nodes_featureids=e.features,
        nodes_splits=doubles(e.splits),
        nodes_modes=numpy_helper.from_array(np.full(len(e.features), BRANCH_LEQ, dtype=np.uint8)),
        nodes_truenodeids=e.true_ids,
        nodes_trueleafs=e.true_leaf,
        nodes_falsenodeids=e.false_ids,
        nodes_falseleafs=e.false_leaf,
        nodes_missing_value_tracks_true=e.missing_true,
        leaf_targetids=[0] * len(e.leaf_weights),
        leaf_weights=doubles(e.leaf_weights),
    )
    graph = helper.make_graph(
        [node],
        "ranker",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, features.pop()])],
        [helper.make_tensor_value_info("score", TensorProto.DOUBLE, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)])
    model.ir_version = 10
    return model.SerializeToString()


class CompiledForest:
    """The boosters' mean score by ONNX Runtime on one thread (as LightGBM's predict is called: requests, not one
    request's hundred rows, are what a service runs side by side)."""

    def __init__(self, boosters: Sequence[Any]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(ensemble_graph(boosters), options, providers=["CPUExecutionProvider"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores of the rows of ``x`` (the boosters' feature columns)."""
        return self.session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float64)})[0][:, 0]
