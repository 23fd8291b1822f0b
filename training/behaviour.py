"""The behaviour model: LightGBM on the 18 window statistics of `harness.features.behaviour_features`."""
from __future__ import annotations

from harness.cycles import STYLES
from harness.features import behaviour_features_batch
from training.common import Clock, Progress
from training.data import Windows
from training.evaluate import macro_f1

#: Training windows must be at least this pure in style (mixed windows straddle a style change).
MIN_PURITY = 0.8


def train_behaviour(train: Windows, val: Windows, seed: int, n_estimators: int, progress: Progress,
                    num_leaves: int = 15):
    import lightgbm as lgb

    clock = Clock()
    keep = train.style_purity >= MIN_PURITY
    x_train = behaviour_features_batch(train.x[keep])
    y_train = train.style[keep]
    x_val = behaviour_features_batch(val.x)
    progress(f"behaviour  {len(x_train)} training windows ({(~keep).sum()} mixed dropped), "
             f"{len(x_val)} validation windows  {clock}")
    def make(trees: int):
        return lgb.LGBMClassifier(
            n_estimators=trees, learning_rate=0.03, num_leaves=num_leaves, min_child_samples=20,
            subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, class_weight="balanced",
            random_state=seed, deterministic=True, force_row_wise=True, num_threads=1, verbose=-1,
        )

    def report(env) -> None:
        if (env.iteration + 1) % 25 == 0:
            loss = env.evaluation_result_list[0][2]
            progress(f"behaviour  round {env.iteration + 1:4d}/{n_estimators}  val logloss {loss:.4f}  {clock}")

    # Rounds are chosen on the validation trips (early stopping), then the model is refitted with that many
    # rounds so that the exported booster holds exactly the trees it predicts with.
    probe = make(n_estimators)
    probe.fit(x_train, y_train, eval_X=(x_val,), eval_y=(val.style,),
              callbacks=[report, lgb.early_stopping(50, verbose=False)])
    rounds = max(1, int(probe.best_iteration_ or n_estimators))
    model = make(rounds)
    model.fit(x_train, y_train)
    f1 = macro_f1(val.style, model.predict(x_val))
    progress(f"behaviour  {rounds} rounds chosen on validation; val macro-F1 {f1:.4f}  {clock}")
    return model


def export_behaviour(model, path, metadata: dict[str, str]) -> None:
    import onnx
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    from training.export import set_metadata

    onx = convert_lightgbm(model.booster_, initial_types=[("features", FloatTensorType([1, 18]))],
                           zipmap=False, target_opset=15)
    names = [o.name for o in onx.graph.output]
    renames = dict(zip(names, ("label", "probabilities")))
    for node in onx.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
    for out in onx.graph.output:
        out.name = renames[out.name]
    # Fixed batch of one, as the contract says, on the outputs too.
    onx.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    onx.graph.output[1].type.tensor_type.shape.dim[0].dim_value = 1
    # The converter names the graph with a random uuid and lists opsets in set order: pin both, so that the same
    # seed gives the same bytes.
    onx.graph.name = "behaviour"
    opsets = sorted(((o.domain, o.version) for o in onx.opset_import))
    del onx.opset_import[:]
    for domain, version in opsets:
        onx.opset_import.add(domain=domain, version=version)
    onnx.checker.check_model(onx)
    set_metadata(onx, metadata)
    onnx.save(onx, str(path))


assert STYLES == ("normal", "eco", "aggressive")
