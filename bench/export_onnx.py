"""Export a model file's network to ONNX (the ONNX Runtime peer runs identical weights).

usage: /usr/bin/python3 bench/export_onnx.py MODEL.safetensors OUT.onnx
The graph is the PyTorch oracle of tools/xbnmodels.py, exported with a dynamic batch axis.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import xbnweights as xw  # noqa: E402


def main():
    src, dst = sys.argv[1], sys.argv[2]
    model, meta = xw.model_from_file(src)
    s = int(meta.get("input_size", "224"))
    torch.onnx.export(model, torch.zeros(1, 3, s, s), dst, input_names=["input"],
                      output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})


if __name__ == "__main__":
    main()
