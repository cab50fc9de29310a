"""tests/integration/test_answers.py - what a v1 answer says, checked against independent
sources: each (index, label) pair against the labels stored in the model file (read from its
safetensors header, or from a labels file given in the config), and the top-k selection and
order against numpy's sort of the V2 probabilities of the same images (best first, ties to
the lower index). The image set is fixed so that the last class is some image's best and
some image's worst: a selection that skipped either end would show."""
import base64
import json

import numpy as np
import pytest

from xbn import SMALL, Server, image_bytes, model_labels, multipart

PREDICT = "/v1/models/small:predict"
IMAGES = [image_bytes(1000 + i, size=(48, 40)) for i in range(48)]
CLASSES = 17


@pytest.fixture(scope="module")
def asrv():
    s = Server("--model", "small=" + SMALL, "--max-images-per-request", "64")
    yield s
    assert s.stop() == 0, "".join(s.lines[-30:])


@pytest.fixture(scope="module")
def v2_probs(asrv):
    """[48, 17] probabilities of IMAGES from the V2 endpoint (float32, as printed)."""
    body = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(IMAGES)],
                                   "data": [base64.b64encode(d).decode() for d in IMAGES]}]})
    st, _, j = asrv.json("POST", "/v2/models/small/infer", body)
    assert st == 200, j
    out = j["outputs"][0]
    assert out["shape"] == [len(IMAGES), CLASSES]
    return np.float32(out["data"]).reshape(len(IMAGES), CLASSES)


def v1_predictions(s, top_k):
    body, hdr = multipart([(d, "image/jpeg") for d in IMAGES])
    st, _, j = s.json("POST", PREDICT + f"?top_k={top_k}", body, hdr)
    assert st == 200, j
    assert len(j["predictions"]) == len(IMAGES)
    return j["predictions"]


def ranking(p):
    """Class indices by probability, best first, ties to the lower index."""
    return list(np.lexsort((np.arange(len(p)), -p.astype(np.float64))))


def test_image_set_exercises_both_ends(v2_probs):
    best = {ranking(p)[0] for p in v2_probs}
    worst = {ranking(p)[-1] for p in v2_probs}
    assert CLASSES - 1 in best and 0 in best, sorted(best)
    assert CLASSES - 1 in worst, sorted(worst)


@pytest.mark.parametrize("top_k", [0, 1, 3, CLASSES, CLASSES + 5])
def test_top_k_selection_and_order(asrv, v2_probs, top_k):
    preds = v1_predictions(asrv, top_k)
    k = CLASSES if top_k == 0 or top_k > CLASSES else top_k
    for i, (pred, p) in enumerate(zip(preds, v2_probs)):
        assert [e["index"] for e in pred] == ranking(p)[:k], i
        assert [np.float32(e["score"]) for e in pred] == [p[c] for c in ranking(p)[:k]], i


def test_labels_are_the_model_files(asrv):
    labels = model_labels(SMALL)
    assert len(labels) == CLASSES and len(set(labels)) == CLASSES
    for pred in v1_predictions(asrv, 0):
        assert sorted(e["index"] for e in pred) == list(range(CLASSES))
        for e in pred:
            assert e["label"] == labels[e["index"]], e


def test_labels_file_overrides_the_model(tmp_path):
    names = [f"thing {c} \u00e9\"q" for c in range(CLASSES)]  # JSON escaping too
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    s = Server("--model", "small=" + SMALL, "--model-set", f"small.labels={path}")
    try:
        st, _, j = s.json("POST", PREDICT + "?top_k=0", IMAGES[0], {"Content-Type": "image/jpeg"})
        assert st == 200, j
        assert sorted(e["index"] for e in j["predictions"][0]) == list(range(CLASSES))
        for e in j["predictions"][0]:
            assert e["label"] == names[e["index"]], e
    finally:
        assert s.stop() == 0
