"""Writes scorecard/: a tiny scorecard-shaped test model in the model-directory
contract (features float32 [N, 4] → label, probability and one contrib_<c>
output per characteristic, loan_to_income computed inside the graph), with an
MLmodel and a serving_check.json whose probabilities and contributions
ONNX Runtime computed. Run with the notebooks' environment:

    ../../../notebooks/.venv/bin/python make_scorecard.py
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scorecard")
os.makedirs(here, exist_ok=True)

def const(name, value, dtype=np.float32):
    arr = np.array(value, dtype=dtype)
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name + "_t",
        TensorProto.FLOAT if dtype == np.float32 else TensorProto.INT64, arr.shape, arr.flatten().tolist()))

nodes = [const(f"i{i}", i, np.int64) for i in range(4)]
cols = ["income", "credit_score", "loan_amount", "years_employed"]
for i, c in enumerate(cols):
    nodes.append(helper.make_node("Gather", ["features", f"i{i}"], [c], axis=1))
nodes += [
    const("w_income", 1e-5), const("c600", 600.0), const("w_cs", 0.01), const("w_years", 0.05),
    const("w_lti", -4.0), const("intercept", -0.5), const("half", 0.5),
    helper.make_node("Mul", ["income", "w_income"], ["contrib_income"]),
    helper.make_node("Sub", ["credit_score", "c600"], ["cs_centered"]),
    helper.make_node("Mul", ["cs_centered", "w_cs"], ["contrib_credit_score"]),
    helper.make_node("Mul", ["years_employed", "w_years"], ["contrib_years_employed"]),
    helper.make_node("Div", ["loan_amount", "income"], ["lti"]),
    helper.make_node("Mul", ["lti", "w_lti"], ["contrib_loan_to_income"]),
    helper.make_node("Sum", ["intercept", "contrib_income", "contrib_credit_score",
                             "contrib_years_employed", "contrib_loan_to_income"], ["logit"]),
    helper.make_node("Sigmoid", ["logit"], ["probability"]),
    helper.make_node("GreaterOrEqual", ["probability", "half"], ["approve"]),
    helper.make_node("Cast", ["approve"], ["label"], to=TensorProto.INT64),
]
contribs = ["income", "credit_score", "years_employed", "loan_to_income"]
graph = helper.make_graph(
    nodes, "scorecard",
    [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
    [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
     helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N"])]
    + [helper.make_tensor_value_info("contrib_" + c, TensorProto.FLOAT, ["N"]) for c in contribs],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="mlservice-test")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "model.onnx"))

sess = ort.InferenceSession(os.path.join(here, "model.onnx"))
rows = [[60000, 700, 20000, 5], [30000, 300, 45000, 0], [145000, 850, 10000, 30], [52000, 610, 26000, 2]]
outs = sess.run(None, {"features": np.array(rows, dtype=np.float32)})
names = [o.name for o in sess.get_outputs()]
res = dict(zip(names, outs))
cases = []
for i, r in enumerate(rows):
    cases.append({
        "input": dict(zip(cols, r), points=50.0),
        "probability": float(res["probability"][i]),
        "approve": bool(res["label"][i] == 1),
        "contributions": {c: float(res["contrib_" + c][i]) for c in contribs},
    })
with open(os.path.join(here, "serving_check.json"), "w") as f:
    json.dump({"tolerance": 1e-5, "cases": cases}, f, indent=1)
sig = json.dumps([{"type": "float", "name": c, "required": True} for c in cols])
with open(os.path.join(here, "MLmodel"), "w") as f:
    f.write("flavors:\n  onnx:\n    data: model.onnx\nsignature:\n  inputs: '" + sig + "'\n")
print(json.dumps(cases, indent=1))
