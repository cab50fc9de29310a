"""Export a model file's network to ONNX (the ONNX Runtime peer runs identical weights).

usage: /usr/bin/python3 bench/export_onnx.py MODEL.safetensors OUT.onnx [--opset 13|17|21]

The graph is the PyTorch oracle of tools/xbnmodels.py, exported with a dynamic batch axis.
Debian's torch 1.13 exports up to opset 17, and has no GroupNorm operator there: each
GroupNorm becomes Reshape(N, G, -1) -> InstanceNormalization -> Reshape back -> Mul -> Add.
--opset 21 exports at 17 and then rewrites every such pattern into one GroupNormalization
(ONNX's operator since opset 18; 18's scale and bias are per group, which ONNX corrected to
per channel in 21, so only 21 can carry the network's affine), so ONNX Runtime gets the
chance to run GroupNorm as one operator. That step needs Debian's python3-onnx; the other
opsets do not.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import xbnweights as xw  # noqa: E402

TORCH_MAX_OPSET = 17
GROUPNORM_OPSET = 21
GROUPNORM_IR_VERSION = 10  # the ONNX IR version that opset 21 came with


def export(src, dst, opset):
    model, meta = xw.model_from_file(src)
    s = int(meta.get("input_size", "224"))
    torch.onnx.export(model, torch.zeros(1, 3, s, s), dst, input_names=["input"],
                      output_names=["logits"], opset_version=opset,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})


def to_groupnorm(path):
    """Rewrite an opset-17 export in place: GroupNorm patterns -> GroupNormalization-21."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(path)
    g = m.graph
    nodes = list(g.node)  # one Python object per node: identities hold below
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in nodes:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    producer = {o: n for n in nodes for o in n.output}
    users = {}
    for n in nodes:
        for i in n.input:
            users.setdefault(i, []).append(n)

    def only_user(name, op):
        u = users.get(name, [])
        return u[0] if len(u) == 1 and u[0].op_type == op else None

    def const_operand(node, other):
        """The constant input of a two-input node whose other input is `other`."""
        k = [i for i in node.input if i != other]
        return consts.get(k[0]) if len(k) == 1 else None

    drop, replace = set(), {}  # replace: a pattern's Add -> its GroupNormalization
    for inorm in [n for n in nodes if n.op_type == "InstanceNormalization"]:
        r1 = producer.get(inorm.input[0])
        r2 = only_user(inorm.output[0], "Reshape")
        mul = r2 and only_user(r2.output[0], "Mul")
        add = mul and only_user(mul.output[0], "Add")
        if not (r1 and r1.op_type == "Reshape" and add):
            raise SystemExit("export_onnx.py: %s is not torch's GroupNorm pattern" % inorm.name)
        x, groups = r1.input[0], int(consts[r1.input[1]][1])  # Reshape to (N, G, -1)
        scale, bias = const_operand(mul, r2.output[0]), const_operand(add, mul.output[0])
        # torch normalises with unit scale and zero bias, then applies the affine per channel
        assert np.all(consts[inorm.input[1]] == 1) and np.all(consts[inorm.input[2]] == 0)
        eps = next((a.f for a in inorm.attribute if a.name == "epsilon"), 1e-5)
        names = [inorm.name + "/scale", inorm.name + "/bias"]
        g.initializer.extend(numpy_helper.from_array(v.reshape(-1).astype(np.float32), n)
                             for v, n in zip((scale, bias), names))
        replace[id(add)] = helper.make_node("GroupNormalization", [x] + names, [add.output[0]],
                                            name=inorm.name + "/GroupNormalization",
                                            epsilon=eps, num_groups=groups)
        drop |= {id(n) for n in (r1, inorm, r2, mul)}
        shape_of = producer.get(r2.input[1])
        if shape_of and len(users[shape_of.output[0]]) == 1:
            drop.add(id(shape_of))
    # in the original order (a topological one), each GroupNormalization in its Add's place
    kept = [replace.get(id(n), n) for n in nodes if id(n) not in drop]
    # ReduceMean's axes moved from an attribute to an input in opset 18
    for n in kept:
        if n.op_type == "ReduceMean":
            axes = next(a for a in n.attribute if a.name == "axes")
            axes_name = n.name + "/axes"
            g.initializer.append(numpy_helper.from_array(np.array(axes.ints, np.int64), axes_name))
            n.input.append(axes_name)
            n.attribute.remove(axes)
    # the Constants only the removed nodes read (the reshape targets, unit scales) go too,
    # and the initializers of the Mul / Add affine, now copied into the GroupNormalizations
    used = {i for n in kept for i in n.input}
    kept = [n for n in kept if n.op_type != "Constant" or n.output[0] in used]
    inits = [i for i in g.initializer if i.name in used]
    del g.node[:]
    g.node.extend(kept)
    del g.initializer[:]
    g.initializer.extend(inits)
    m.opset_import[0].version = GROUPNORM_OPSET
    m.ir_version = GROUPNORM_IR_VERSION
    onnx.save(m, path)
    print("export_onnx.py: %d GroupNorm patterns -> GroupNormalization-%d" % (
        len(replace), GROUPNORM_OPSET), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--opset", type=int, default=13, choices=[13, TORCH_MAX_OPSET, GROUPNORM_OPSET])
    a = ap.parse_args()
    export(a.model, a.out, min(a.opset, TORCH_MAX_OPSET))
    if a.opset == GROUPNORM_OPSET:
        to_groupnorm(a.out)


if __name__ == "__main__":
    main()
