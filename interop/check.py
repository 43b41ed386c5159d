"""Open Inference Protocol interop checks against a running ML Service.

Run by interop/interop_test.go (which starts the real binary) as

    interop/.venv/bin/python interop/check.py --url http://127.0.0.1:PORT \
        --model loan-approval --champion 2 --challenger 1

It talks to the server with tritonclient[http] and KServe's InferenceRESTClient,
the clients a platform team already runs, and checks: health, server and model
metadata, infer in binary and JSON mode, with and without requested outputs,
with a request id, with a version in the path; each probability equal to
/v1/predict's for the same applications; an unknown model and a wrong input
name refused with a readable error; and every response body valid against
oip.schema.json (written from the protocol's REST specification). Prints one
line per check and "N passed, N failed" at the end; exits 1 on any failure.
"""

import argparse
import asyncio
import json
import pathlib
import sys
import traceback
import urllib.error
import urllib.request

import httpx
import jsonschema
import numpy as np
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException

HERE = pathlib.Path(__file__).resolve().parent
SCHEMA = json.loads((HERE / "oip.schema.json").read_text())

# Applications as the legacy system sends them; columns in signature order.
APPLICATIONS = [
    {"income": 50000, "credit_score": 700, "loan_amount": 20000, "years_employed": 5, "points": 60},
    {"income": 20000, "credit_score": 500, "loan_amount": 30000, "years_employed": 1, "points": 10},
    {"income": 120000, "credit_score": 820, "loan_amount": 15000, "years_employed": 12, "points": 90},
    {"income": 38000, "credit_score": 610, "loan_amount": 42000, "years_employed": 0, "points": 20},
    {"income": 75500.5, "credit_score": 655, "loan_amount": 9000, "years_employed": 3, "points": 55},
]
COLUMNS = ["income", "credit_score", "loan_amount", "years_employed"]

results = []


def check(name):
    def wrap(fn):
        results.append((name, fn))
        return fn

    return wrap


def validate(instance, definition):
    """Validates instance against one definition of oip.schema.json."""
    schema = {"$ref": "#/$defs/" + definition, "$defs": SCHEMA["$defs"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


def http(method, url, body=None, headers=None):
    """Raw HTTP: status, headers and body, for schema checks of exact bodies."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def features():
    return np.array([[a[c] for c in COLUMNS] for a in APPLICATIONS], dtype=np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="loan-approval")
    ap.add_argument("--champion", required=True, help="the champion's version")
    ap.add_argument("--challenger", help="a live non-champion version, for a version in the path")
    args = ap.parse_args()
    base = args.url.rstrip("/")
    host = base.split("://", 1)[1]
    model = args.model
    client = triton.InferenceServerClient(url=host)

    # /v1/predict's probabilities (the champion takes all traffic) are the reference.
    expected = []
    for a in APPLICATIONS:
        status, _, body = http("POST", base + "/v1/predict", json.dumps(a).encode(), {"Content-Type": "application/json"})
        assert status == 200, (status, body)
        d = json.loads(body)
        assert d["model"]["version"] == args.champion, d
        expected.append(np.float32(d["probability"]))
    expected = np.array(expected, dtype=np.float32)

    def same_as_v1(probs, what):
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        if not np.array_equal(probs, expected):
            raise AssertionError(f"{what}: probabilities {probs.tolist()} != /v1/predict's {expected.tolist()}")

    @check("raw: every /v2 response body valid against the spec's schemas")
    def _():
        cases = [
            ("GET", "/v2/health/live", 200, "live_server"),
            ("GET", "/v2/health/ready", 200, "ready_server"),
            ("GET", "/v2", 200, "metadata_server"),
            ("GET", f"/v2/models/{model}", 200, "metadata_model"),
            ("GET", f"/v2/models/{model}/versions/{args.champion}", 200, "metadata_model"),
            ("GET", f"/v2/models/{model}/ready", 200, "ready_model"),
            ("GET", "/v2/models/no-such-model", 404, "error"),
            ("GET", f"/v2/models/{model}/versions/999", 404, "error"),
            ("GET", "/v2/no/such/route", 404, "error"),
        ]
        for method, path, want, definition in cases:
            status, headers, body = http(method, base + path)
            assert status == want, (path, status, body)
            validate(json.loads(body), definition)
        row = json.dumps({"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": features()[0].tolist()}]}).encode()
        status, _, body = http("POST", base + f"/v2/models/{model}/infer", row)
        assert status == 200, body
        validate(json.loads(body), "inference_response")
        # Several rows: each row's decision id, comma-separated in one string
        # parameter (the spec's parameters are scalars).
        x = features()
        rows = json.dumps({"inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}]}).encode()
        status, _, body = http("POST", base + f"/v2/models/{model}/infer", rows)
        assert status == 200, body
        d = json.loads(body)
        validate(d, "inference_response")
        ids = d["parameters"]["decision_ids"].split(",")
        assert len(ids) == len(x) and len(set(ids)) == len(ids), d["parameters"]
        for bad in [b"{", b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}']:
            status, headers, body = http("POST", base + f"/v2/models/{model}/infer", bad)
            assert status == 400, (bad, status, body)
            assert headers.get("Content-Type") == "application/json", headers
            validate(json.loads(body), "error")

    @check("tritonclient: health, server and model metadata")
    def _():
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(model)
        assert client.is_model_ready(model, model_version=args.champion)
        assert not client.is_model_ready(model, model_version="999")
        meta = client.get_server_metadata()
        validate(meta, "metadata_server")
        assert "binary_tensor_data" in meta["extensions"], meta
        md = client.get_model_metadata(model)
        validate(md, "metadata_model")
        assert md["name"] == model and md["platform"] == "onnx_onnxv1", md
        assert args.champion in md["versions"], md
        (inp,) = md["inputs"]
        assert inp["datatype"] == "FP32" and inp["shape"] == [-1, len(COLUMNS)], inp
        names = [o["name"] for o in md["outputs"]]
        assert names[:2] == ["label", "probability"], names
        md2 = client.get_model_metadata(model, model_version=args.champion)
        assert md2["inputs"] == md["inputs"], md2

    def triton_infer(binary, outputs=None, request_id="", version="", name=None):
        md = client.get_model_metadata(model, model_version=version)
        x = features()
        inp = triton.InferInput(name or md["inputs"][0]["name"], list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        outs = None
        if outputs is not None:
            outs = [triton.InferRequestedOutput(o, binary_data=binary) for o in outputs]
        return client.infer(model, [inp], model_version=version, outputs=outs, request_id=request_id)

    @check("tritonclient: infer, binary tensors, all outputs")
    def _():
        r = triton_infer(binary=True)
        resp = r.get_response()
        validate(resp, "inference_response")
        assert resp["model_name"] == model and resp["model_version"] == args.champion, resp
        assert all("binary_data_size" in o["parameters"] for o in resp["outputs"]), resp
        same_as_v1(r.as_numpy("probability"), "binary")
        labels = r.as_numpy("label")
        assert labels.dtype == np.int64 and labels.shape == (len(APPLICATIONS),), labels

    @check("tritonclient: infer, JSON tensors, requested output, request id")
    def _():
        r = triton_infer(binary=False, outputs=["probability"], request_id="interop-42")
        resp = r.get_response()
        validate(resp, "inference_response")
        assert resp["id"] == "interop-42", resp
        assert [o["name"] for o in resp["outputs"]] == ["probability"], resp
        assert "data" in resp["outputs"][0], resp
        same_as_v1(r.as_numpy("probability"), "JSON")

    @check("tritonclient: infer, binary, requested outputs, version in the path")
    def _():
        r = triton_infer(binary=True, outputs=["label", "probability"], version=args.champion, request_id="v")
        resp = r.get_response()
        validate(resp, "inference_response")
        assert resp["model_version"] == args.champion and resp["id"] == "v", resp
        same_as_v1(r.as_numpy("probability"), "versioned")
        if args.challenger:
            r = triton_infer(binary=True, version=args.challenger)
            assert r.get_response()["model_version"] == args.challenger, r.get_response()
            p = r.as_numpy("probability")
            assert p.shape == (len(APPLICATIONS),) and np.all((p >= 0) & (p <= 1)), p

    @check("tritonclient: one tensor per column (JSON and binary)")
    def _():
        for binary in (False, True):
            inputs = []
            for j, c in enumerate(COLUMNS):
                col = features()[:, j].copy()
                i = triton.InferInput(c, [len(col)], "FP32")
                i.set_data_from_numpy(col, binary_data=binary)
                inputs.append(i)
            r = client.infer(model, inputs)
            same_as_v1(r.as_numpy("probability"), f"columns binary={binary}")

    @check("tritonclient: unknown model, wrong input name, unknown version refused readably")
    def _():
        x = features()
        for call, want in [
            (lambda: client.infer("no-such-model", [_triton_input("features", x)]), ("404", "unknown model")),
            (lambda: client.infer(model, [_triton_input("wrong_name", x)]), ("400", 'unknown input "wrong_name"')),
            (lambda: client.infer(model, [_triton_input("features", x)], model_version="999"), ("404", "no live version")),
            (lambda: client.get_model_metadata("no-such-model"), ("404", "unknown model")),
        ]:
            try:
                call()
            except InferenceServerException as e:
                assert e.status() == want[0] and want[1] in e.message(), (e.status(), e.message())
                assert "exception occurred in the client" not in e.message(), e.message()
            else:
                raise AssertionError(f"not refused: {want}")

    @check("tritonclient: an out-of-contract value is refused with the field named")
    def _():
        x = features()
        x[0, 1] = 1000  # credit_score above 900
        try:
            client.infer(model, [_triton_input("features", x)])
        except InferenceServerException as e:
            assert e.status() == "400" and "credit_score" in e.message(), e.message()
        else:
            raise AssertionError("credit_score 1000 accepted")

    @check("kserve InferenceRESTClient: health, infer in JSON and binary, errors")
    def _():
        asyncio.run(kserve_checks(base, model, args.champion, same_as_v1))

    failed = 0
    for name, fn in results:
        try:
            fn()
            print(f"ok   {name}")
        except Exception:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(file=sys.stdout)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _triton_input(name, x):
    i = triton.InferInput(name, list(x.shape), "FP32")
    i.set_data_from_numpy(x, binary_data=True)
    return i


async def kserve_checks(base, model, champion, same_as_v1):
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=10))
    try:
        assert await client.is_server_live(base)
        assert await client.is_server_ready(base)
        assert await client.is_model_ready(base, model)
        assert not await client.is_model_ready(base, "no-such-model")

        # JSON tensors, no outputs named, a request id.
        inp = InferInput("features", list(features().shape), "FP32")
        inp.set_data_from_numpy(features(), binary_data=False)
        res = await client.infer(base, InferRequest(model, [inp], request_id="kserve-1"), model_name=model)
        assert res.id == "kserve-1" and res.model_name == model, res
        out = {o.name: o for o in res.outputs}
        same_as_v1(out["probability"].as_numpy(), "kserve JSON")
        assert out["label"].datatype == "INT64", out["label"]

        # Binary tensors in and out, one output requested.
        inp = InferInput("features", list(features().shape), "FP32")
        inp.set_data_from_numpy(features(), binary_data=True)
        req = InferRequest(model, [inp], request_id="kserve-2",
                           request_outputs=[RequestedOutput("probability", parameters={"binary_data": True})])
        headers = {}
        res = await client.infer(base, req, model_name=model, response_headers=headers)
        assert "inference-header-content-length" in {k.lower() for k in headers}, headers
        assert [o.name for o in res.outputs] == ["probability"], res
        same_as_v1(res.outputs[0].as_numpy(), "kserve binary")

        # Refusals carry the server's message.
        for name, url_model, want in [("wrong_name", model, 'unknown input "wrong_name"'),
                                      ("features", "no-such-model", "unknown model")]:
            inp = InferInput(name, list(features().shape), "FP32")
            inp.set_data_from_numpy(features(), binary_data=False)
            try:
                await client.infer(base, InferRequest(url_model, [inp]), model_name=url_model)
            except httpx.HTTPStatusError as e:
                assert want in str(e), str(e)
            else:
                raise AssertionError(f"not refused: {want}")
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(main())
