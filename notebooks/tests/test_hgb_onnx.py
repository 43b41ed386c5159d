"""skl2onnx converts a (monotone) HistGradientBoosting model with the locked versions.

skl2onnx 1.20.0 with protobuf 7 fails on every HistGradientBoosting model ("Expected an int, got a
boolean" while building TreeEnsembleClassifier); the lock pins protobuf 6.33.6, which converts.
"""

from __future__ import annotations

import google.protobuf
import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import HistGradientBoostingClassifier

import scorecard


def test_protobuf_is_the_pinned_major():
    assert int(google.protobuf.__version__.split(".")[0]) < 7, google.protobuf.__version__


def test_monotone_histgradientboosting_converts_and_matches():
    fresh = scorecard.fresh_applicants(3000, 5)
    X = fresh[scorecard.INPUT_FIELDS].to_numpy(np.float32)
    y = fresh["loan_approved"].astype(int).to_numpy()
    model = HistGradientBoostingClassifier(max_iter=60, monotonic_cst=[1, 1, -1, 1], random_state=0).fit(X, y)
    onx = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, 4]))],
                          options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {"features": X})
    assert np.array_equal(label, model.predict(X))
    assert np.max(np.abs(proba[:, 1] - model.predict_proba(X)[:, 1])) <= 1e-5
