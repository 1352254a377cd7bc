"""Uploaded .onnx files read without running them: what passes, and every way a file is
refused, each with its code and a sentence a person can read."""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from django.utils import translation
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from defectlab.inference.engine.checks import (
    MAX_INPUT_SIDE,
    ModelRefused,
    inspect_model,
    supported_versions,
)
from tests.inference import hostile

LIMIT = 10 << 20


def refusal(data: bytes, *, max_bytes: int = LIMIT) -> ModelRefused:
    with pytest.raises(ModelRefused) as caught:
        inspect_model(data, max_bytes=max_bytes)
    error = caught.value
    assert str(error) == error.message
    assert "%(" not in error.message and error.message.rstrip()[-1] in ".)", error.message
    return error


def external_copy(model: onnx.ModelProto, folder: Path, *, attributes: bool = False) -> bytes:
    """``model`` as onnx saves it with its tensors in ``weights.bin`` beside it."""
    external_data_helper.convert_model_to_external_data(
        model, location="weights.bin", size_threshold=0, convert_attribute=attributes
    )
    path = folder / "model.onnx"
    onnx.save_model(model, path)
    assert (folder / "weights.bin").stat().st_size > 0
    return path.read_bytes()


# ---------------------------------------------------------------------------- accepted


def test_a_detector_is_read_with_its_hash_versions_shapes_and_raw_metadata() -> None:
    model = hostile.small_detector()
    model.doc_string = "a scratch and dent detector"
    data = hostile.serialized(model)
    found = inspect_model(data, max_bytes=len(data))  # exactly at the limit is allowed
    assert found.sha256 == hashlib.sha256(data).hexdigest()
    assert found.size == len(data)
    assert (found.ir_version, found.opset) == (hostile.IR_VERSION, hostile.OPSET)
    assert found.opsets == {"": hostile.OPSET}
    assert (found.producer_name, found.producer_version) == ("defectlab-tests", "1.0")
    assert found.input.name == "images"
    assert found.input.dtype == "float32"
    assert found.input.shape == ("batch", 3, "height", "width")
    assert [(out.name, out.shape) for out in found.outputs] == [
        ("output0", ("batch", 6, "anchors"))
    ]
    # Raw: interpreting names and imgsz is the engine's metadata reader's job.
    assert found.metadata == {"names": "{0: 'scratch', 1: 'dent'}", "imgsz": "[640, 640]"}
    assert found.doc_string == "a scratch and dent detector"


def test_a_fixed_size_half_precision_input_is_an_image_input() -> None:
    inputs = [hostile.image_input(shape=(1, 3, 640, 640), elem_type=TensorProto.FLOAT16)]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT16, [1, 3, 640, 640])
    model = hostile.model_of(
        [helper.make_node("Identity", ["images"], ["out"])], [output], inputs=inputs
    )
    found = inspect_model(hostile.serialized(model), max_bytes=LIMIT)
    assert (found.input.dtype, found.input.shape) == ("float16", (1, 3, 640, 640))
    assert found.input.shape_text == "1×3×640×640"


def test_hostile_graphs_that_only_fail_when_run_pass_the_file_checks() -> None:
    """Why the sandbox exists: nothing in these files says what they do at run time."""
    for model in (
        hostile.throwing(),
        hostile.hungry(),
        hostile.hungry_when_loaded(),
        hostile.endless(),
    ):
        inspect_model(hostile.serialized(model), max_bytes=LIMIT)


def test_the_supported_range_is_what_onnxruntime_runs() -> None:
    supported = supported_versions()
    assert supported.ir_versions[0] == 3 and supported.opsets[0] == 7
    # onnxruntime 1.20 (the oldest allowed) ran opset 21 and IR 10; newer ones run more.
    assert supported.opsets[1] >= 21 and supported.ir_versions[1] >= 10
    assert {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"} <= supported.domains.keys()
    low, high = supported.opsets
    for opset in (low, high):
        model = hostile.small_detector(opset=opset)
        inspect_model(hostile.serialized(model), max_bytes=LIMIT)


# ---------------------------------------------------------------------------- not ONNX


def test_a_file_over_the_limit_is_refused_before_it_is_parsed() -> None:
    error = refusal(b"\x00garbage" * 200, max_bytes=1024)
    assert error.code == "too_large"
    assert error.message == "The file is 1.56 KB; models up to 1 KB are accepted."
    data = hostile.serialized(hostile.small_detector())
    assert refusal(data, max_bytes=len(data) - 1).code == "too_large"


def test_an_empty_file_is_refused() -> None:
    error = refusal(b"")
    assert (error.code, error.message) == ("empty", "The file is empty.")


def test_random_bytes_are_not_onnx() -> None:
    data = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    error = refusal(data)
    assert error.code == "not_onnx"
    assert error.message.startswith("This file is not an ONNX model")


def test_a_zip_is_named_as_one_with_a_hint_about_pytorch_checkpoints() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("best/data.pkl", b"weights")
    error = refusal(buffer.getvalue())
    assert error.code == "not_onnx"
    assert error.message == (
        "This file is a ZIP archive, not an ONNX model (a PyTorch .pt checkpoint is one): "
        "export the model to ONNX and upload the .onnx file."
    )


def test_a_pickle_is_named_as_one() -> None:
    error = refusal(pickle.dumps({"model": [1, 2, 3]}, protocol=4))
    assert error.code == "not_onnx"
    assert error.message.startswith("This file is in the Python pickle format, not ONNX")


def test_a_truncated_model_is_not_onnx() -> None:
    data = hostile.serialized(hostile.small_detector())
    error = refusal(data[: len(data) // 2])
    assert error.code == "not_onnx"
    assert "cannot be read" in error.message


@pytest.mark.parametrize(
    "proto",
    [
        numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "t"),
        hostile.small_detector().graph,
    ],
    ids=["tensor", "graph"],
)
def test_a_protobuf_of_another_kind_is_not_onnx(proto: onnx.TensorProto) -> None:
    error = refusal(proto.SerializeToString())
    assert error.code == "not_onnx"


# ---------------------------------------------------------------------------- external data


def test_an_initializer_in_an_external_file_is_refused(tmp_path: Path) -> None:
    error = refusal(external_copy(hostile.small_detector(), tmp_path))
    assert error.code == "external_data"
    assert error.params["location"] == "weights.bin"
    assert "holds all its weights in the .onnx file" in error.message


def test_a_constant_node_in_an_external_file_is_refused(tmp_path: Path) -> None:
    value = numpy_helper.from_array(np.ones((3, 1, 1), dtype=np.float32), "bias")
    nodes = [
        helper.make_node("Constant", [], ["bias"], value=value),
        helper.make_node("Add", ["images", "bias"], ["out"]),
    ]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, hostile.IMAGE_SHAPE)
    model = hostile.model_of(nodes, [output])
    error = refusal(external_copy(model, tmp_path, attributes=True))
    assert (error.code, error.params["tensor"]) == ("external_data", "bias")


def test_a_tensor_pointing_at_a_server_file_inside_a_loop_body_is_refused() -> None:
    model = hostile.endless()
    loop = next(node for node in model.graph.node if node.op_type == "Loop")
    one = loop.attribute[0].g.initializer[0]
    one.ClearField("float_data")
    one.ClearField("raw_data")
    one.data_location = TensorProto.EXTERNAL
    one.external_data.add(key="location", value="/etc/passwd")
    error = refusal(hostile.serialized(model))
    assert error.code == "external_data"
    assert "“/etc/passwd”" in error.message


# ---------------------------------------------------------------------------- versions


@pytest.mark.parametrize("ir_version", [2, 99])
def test_an_ir_version_outside_the_range_is_refused_naming_the_range(ir_version: int) -> None:
    error = refusal(hostile.serialized(hostile.small_detector(ir_version=ir_version)))
    low, high = supported_versions().ir_versions
    assert error.code == "ir_version"
    assert error.message == (
        f"The model's ONNX IR version is {ir_version}; this server runs IR versions "
        f"{low} to {high}."
    )


@pytest.mark.parametrize("opset", [6, 99])
def test_an_opset_outside_the_range_is_refused_naming_the_range(opset: int) -> None:
    error = refusal(hostile.serialized(hostile.small_detector(opset=opset)))
    low, high = supported_versions().opsets
    assert error.code == "opset"
    assert f"opset {opset}; this server runs opsets {low} to {high}." in error.message


def test_operators_of_an_unknown_domain_are_refused() -> None:
    model = hostile.model_of(
        [helper.make_node("Steal", ["images"], ["out"], domain="com.example.custom")],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, hostile.IMAGE_SHAPE)],
    )
    model.opset_import.append(helper.make_opsetid("com.example.custom", 1))
    error = refusal(hostile.serialized(model))
    assert error.code == "custom_ops"
    assert "“com.example.custom”" in error.message


def test_a_domain_imported_but_used_by_no_node_is_no_reason_to_refuse() -> None:
    """Exporters leave such imports behind (PyTorch's dynamo exporter does); onnxruntime
    ignores them."""
    model = hostile.small_detector()
    model.opset_import.append(helper.make_opsetid("pkg.onnxscript.torch_lib", 1))
    found = inspect_model(hostile.serialized(model), max_bytes=LIMIT)
    assert found.opsets["pkg.onnxscript.torch_lib"] == 1


def test_a_graph_the_onnx_checker_rejects_is_refused_with_its_reason() -> None:
    model = hostile.model_of(
        [helper.make_node("Relu", ["nowhere"], ["out"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, hostile.IMAGE_SHAPE)],
    )
    error = refusal(hostile.serialized(model))
    assert error.code == "invalid_graph"
    assert "nowhere" in error.message


# ---------------------------------------------------------------------------- input, outputs


def test_two_inputs_are_refused() -> None:
    inputs = [hostile.image_input(), hostile.image_input("second")]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, hostile.IMAGE_SHAPE)
    nodes = [helper.make_node("Add", ["images", "second"], ["out"])]
    error = refusal(hostile.serialized(hostile.model_of(nodes, [output], inputs=inputs)))
    assert error.code == "no_image_input"
    assert error.message == "The model has 2 inputs; a detector takes one, the image."


@pytest.mark.parametrize(
    ("shape", "elem_type", "expected"),
    [
        (("batch", 1, "height", "width"), TensorProto.FLOAT, "has the shape batch×1×height×width"),
        (("batch", 640, 640, 3), TensorProto.FLOAT, "has the shape batch×640×640×3"),
        ((3, 640, 640), TensorProto.FLOAT, "has the shape 3×640×640"),
        (("batch", 3, "height", "width"), TensorProto.UINT8, "holds uint8 values"),
    ],
    ids=["one channel", "channels last", "rank 3", "uint8"],
)
def test_an_input_that_is_not_a_float_nchw_colour_image_is_refused(
    shape: tuple[object, ...], elem_type: int, expected: str
) -> None:
    inputs = [hostile.image_input(shape=shape, elem_type=elem_type)]
    output = helper.make_tensor_value_info("out", elem_type, list(shape))
    nodes = [helper.make_node("Identity", ["images"], ["out"])]
    error = refusal(hostile.serialized(hostile.model_of(nodes, [output], inputs=inputs)))
    assert error.code == "no_image_input"
    assert f"The input “images” {expected}" in error.message


def test_an_absurd_input_size_is_refused() -> None:
    shape = (1, 3, MAX_INPUT_SIDE + 1, 640)
    inputs = [hostile.image_input(shape=shape)]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, list(shape))
    nodes = [helper.make_node("Identity", ["images"], ["out"])]
    error = refusal(hostile.serialized(hostile.model_of(nodes, [output], inputs=inputs)))
    assert error.code == "bad_input"
    assert "1×3×16385×640" in error.message


def test_an_output_declared_with_an_absurd_dimension_is_refused() -> None:
    error = refusal(hostile.serialized(hostile.identity_with_output([1, 99_999_999_999])))
    assert error.code == "bad_output"
    assert error.message.startswith("The output “out” is declared 1×99999999999")


def test_an_output_of_too_many_values_in_all_is_refused() -> None:
    error = refusal(hostile.serialized(hostile.identity_with_output([1, 1000, 1000, 1000])))
    assert error.code == "bad_output"


def test_an_output_declared_with_a_negative_dimension_is_refused() -> None:
    error = refusal(hostile.serialized(hostile.identity_with_output([1, -5, 8])))
    assert error.code == "bad_output"


def test_an_output_of_rank_five_is_refused() -> None:
    error = refusal(hostile.serialized(hostile.identity_with_output([1, 3, 2, 2, 2])))
    assert error.code == "bad_output"
    assert "has 5 dimensions (1×3×2×2×2)" in error.message


def test_a_model_without_outputs_is_refused() -> None:
    model = hostile.identity_with_output([1, 3, 8, 8])
    del model.graph.output[:]
    error = refusal(hostile.serialized(model))
    assert (error.code, error.message) == ("bad_output", "The model has no outputs.")


# ---------------------------------------------------------------------------- the message, translated


def test_a_refusal_survives_pickling_with_its_code_and_parameters() -> None:
    error = refusal(hostile.serialized(hostile.small_detector(opset=99)))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.template, copy.params, copy.message) == (
        error.code,
        error.template,
        error.params,
        error.message,
    )


def test_a_refusal_is_shown_in_the_language_of_the_request() -> None:
    error = refusal(hostile.serialized(hostile.small_detector(opset=99)))
    with translation.override("zh-hans"):
        shown = error.localized(translation.gettext)
    assert shown != error.message
    assert "99" in shown and str(supported_versions().opsets[1]) in shown
    with translation.override("en"):
        assert error.localized(translation.gettext) == error.message
