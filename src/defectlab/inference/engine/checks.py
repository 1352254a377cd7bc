"""What an uploaded ``.onnx`` file must be before anything runs it: read with the ``onnx``
package, never executed (``sandbox.py`` runs it, in another process).

``inspect_model`` refuses, each with a stable ``code`` and a sentence a person can read: a file
over the size limit (before it is parsed), anything that is not an ONNX model (other formats
are named: a PyTorch checkpoint is a ZIP), tensors kept in external files (loading the model
would read other files of the server), an IR version or opset this onnxruntime cannot run,
operator domains it does not know, a graph the ONNX checker rejects, anything but one float
N×3×H×W image input, and outputs no detector has. What it accepts comes back as a
``ModelFile``: the SHA-256 of the bytes, versions, producer, the input's and outputs' shapes and
the raw ``metadata_props`` (``metadata.py`` of the engine reads what Ultralytics writes there).

No Django here: messages are English, marked with ``gettext_noop`` (so the catalog carries them)
and kept with their parameters, so the app shows them translated with ``localized(gettext)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata as distributions

import onnx
from google.protobuf.message import DecodeError

from defectlab.inference.engine.errors import EngineError, gettext_noop

Dim = int | str | None  # a size, a symbolic name ("batch", "height"), or unknown
Shape = tuple[Dim, ...]

# A detector's input side in pixels: YOLO models are exported at 320 to 1280, industrial ones
# up to a few thousand; a side beyond this is a mistake or an attempt to make every run huge.
MAX_INPUT_SIDE = 16_384
MAX_BATCH = 256
# Outputs: YOLO heads are rank 3 (1×84×8400, 1×300×6) and mask prototypes rank 4 (1×32×160×160).
# A declared dimension above 10 million, or an output of more than 100 million values (400 MB
# of float32; a 4096-pixel YOLOv8 head has about 29 million), is no detector's.
MAX_OUTPUT_RANK = 4
MAX_OUTPUT_DIM = 10_000_000
MAX_OUTPUT_VALUES = 100_000_000
IMAGE_TYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}
# onnxruntime runs every opset from 7 on (its documented backward compatibility) and IR from 3.
MIN_OPSET = 7
MIN_IR_VERSION = 3
DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})
# Formats people upload by mistake, by their first bytes (offset, magic, name).
FOREIGN_FORMATS = (
    (0, b"PK\x03\x04", "ZIP"),
    (0, b"\x80\x02", "Python pickle"),
    (0, b"\x80\x04", "Python pickle"),
    (0, b"\x89HDF\r\n\x1a\n", "HDF5"),
    (4, b"TFL3", "TensorFlow Lite"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"7z\xbc\xaf\x27\x1c", "7-Zip"),
)
MAX_DETAIL = 300  # characters of a library's own error text kept in a message


class ModelRefused(EngineError):
    """An uploaded model that will not be used. ``code`` is stable for programs; ``message`` is
    the English sentence; ``localized(gettext)`` the same in the language of the request."""


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output as declared: its name, element type and shape."""

    name: str
    dtype: str  # numpy's name of the element type ("float32"), or the ONNX one where none
    shape: Shape | None  # None: the graph does not declare a shape

    @property
    def shape_text(self) -> str:
        return shape_text(self.shape)


@dataclass(frozen=True)
class ModelFile:
    """An accepted ONNX file, as read without running it."""

    sha256: str
    size: int
    ir_version: int
    opset: int  # of the default (ai.onnx) domain
    opsets: Mapping[str, int]  # every domain the model imports, "" for the default one
    producer_name: str
    producer_version: str
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)  # metadata_props, as written
    doc_string: str = ""


@dataclass(frozen=True)
class SupportedVersions:
    """The IR versions and default-domain opsets the installed onnxruntime can run."""

    ir_versions: tuple[int, int]
    opsets: tuple[int, int]
    domains: Mapping[str, int]  # every operator domain it has, with its newest opset
    runtime: str  # the onnxruntime version they were read for


def inspect_model(data: bytes, *, max_bytes: int) -> ModelFile:
    """``data`` read and checked as a detector's ONNX file, or ``ModelRefused``."""
    size = len(data)
    if size > max_bytes:
        raise ModelRefused(
            "too_large",
            gettext_noop("The file is %(size)s; models up to %(limit)s are accepted."),
            size=size_text(size),
            limit=size_text(max_bytes),
        )
    model = _parsed(data)
    _refuse_external_data(model)
    opsets = _check_versions(model)
    image = _image_input(model.graph)
    outputs = _outputs(model.graph)
    _check_graph(data)
    return ModelFile(
        sha256=hashlib.sha256(data).hexdigest(),
        size=size,
        ir_version=model.ir_version,
        opset=next(version for domain, version in opsets.items() if domain in DEFAULT_DOMAINS),
        opsets=opsets,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        input=image,
        outputs=outputs,
        metadata={prop.key: prop.value for prop in model.metadata_props},
        doc_string=model.doc_string,
    )


# ---------------------------------------------------------------------------- the file


def _parsed(data: bytes) -> onnx.ModelProto:
    if not data:
        raise ModelRefused("empty", gettext_noop("The file is empty."))
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as error:
        _refuse_foreign_format(data)
        raise ModelRefused(
            "not_onnx",
            gettext_noop("This file is not an ONNX model (it cannot be read as one: %(detail)s)."),
            detail=_detail(error) or type(error).__name__,
        ) from None
    # Protobuf reads many byte strings as *some* message; an ONNX model has these two.
    if not model.HasField("graph") or model.ir_version <= 0:
        _refuse_foreign_format(data)
        raise ModelRefused(
            "not_onnx",
            gettext_noop("This file is not an ONNX model: it has no graph or no IR version."),
        )
    return model


def _refuse_foreign_format(data: bytes) -> None:
    """Name the format of a file that is not ONNX where its first bytes tell (only once it
    failed to read as ONNX: a model's bytes could start with anything)."""
    for offset, magic, name in FOREIGN_FORMATS:
        if data[offset : offset + len(magic)] != magic:
            continue
        if name == "ZIP":
            raise ModelRefused(
                "not_onnx",
                gettext_noop(
                    "This file is a ZIP archive, not an ONNX model (a PyTorch .pt checkpoint is "
                    "one): export the model to ONNX and upload the .onnx file."
                ),
            )
        raise ModelRefused(
            "not_onnx",
            gettext_noop(
                "This file is in the %(format)s format, not ONNX: export the model to ONNX and "
                "upload the .onnx file."
            ),
            format=name,
        )


def _subgraphs(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.GraphProto]:
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield attribute.g
            yield from attribute.graphs


def _graphs(model: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    """Every graph of the model: the main one, those of training information, and the bodies
    of If / Loop / Scan nodes at any depth (in model functions too)."""
    stack = [model.graph]
    for info in model.training_info:
        stack += [info.initialization, info.algorithm]
    for function in model.functions:
        stack.extend(_subgraphs(function.node))
    while stack:
        graph = stack.pop()
        yield graph
        stack.extend(_subgraphs(graph.node))


def _nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node: of every graph and of every model function."""
    for function in model.functions:
        yield from function.node
    for graph in _graphs(model):
        yield from graph.node


def _tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor with data: initializers (dense and sparse) and the tensors of node
    attributes (``Constant``'s value and any other). Every field is read whatever the
    attribute's declared type says, as a careless reader might."""
    for graph in _graphs(model):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
    for node in _nodes(model):
        for attribute in node.attribute:
            yield attribute.t
            yield from attribute.tensors
            for sparse in (attribute.sparse_tensor, *attribute.sparse_tensors):
                yield from (sparse.values, sparse.indices)


def _refuse_external_data(model: onnx.ModelProto) -> None:
    for tensor in _tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            entries = {entry.key: entry.value for entry in tensor.external_data}
            raise ModelRefused(
                "external_data",
                gettext_noop(
                    "The model keeps its tensor “%(tensor)s” in another file (“%(location)s”): "
                    "upload a model that holds all its weights in the .onnx file itself."
                ),
                tensor=tensor.name,
                location=entries.get("location", "?"),
            )


# ---------------------------------------------------------------------------- versions


@cache
def supported_versions() -> SupportedVersions:
    """What the installed onnxruntime runs, read from onnxruntime itself.

    Its operator schemas give each domain it has kernels for and the newest opset of each
    (``since_version``: the ONNX release it bundles always changes some operator, so the
    newest change is its opset; a release that changed none would be refused one opset too
    early, never run one too late). Its IR limit is not exposed: it is that of the ONNX release
    of the same opset, from ``onnx``'s version table (onnxruntime 1.32: opset 28, IR 14, as a
    probe of its session creation confirms). onnxruntime is imported here only for its schemas;
    no model is loaded into it. A build without schemas falls back to the ``onnx`` package's
    own limits and the standard domains.
    """
    runtime = distributions.version("onnxruntime")
    newest: dict[str, int] = {}
    try:
        from onnxruntime.capi import _pybind_state as runtime_state

        for schema in runtime_state.get_all_operator_schema():
            newest[schema.domain] = max(newest.get(schema.domain, 0), schema.since_version)
    except (ImportError, AttributeError):  # a minimal build
        newest = {"": onnx.defs.onnx_opset_version(), "ai.onnx.ml": 1, "com.microsoft": 1}
    opset = max(newest.get("", 0), newest.get("ai.onnx", 0))
    ir_version = max(
        (int(row[1]) for row in onnx.helper.VERSION_TABLE if int(row[2]) == opset),
        default=onnx.IR_VERSION,
    )
    newest["ai.onnx"] = opset
    return SupportedVersions(
        ir_versions=(MIN_IR_VERSION, ir_version),
        opsets=(MIN_OPSET, opset),
        domains=newest,
        runtime=runtime,
    )


def _check_versions(model: onnx.ModelProto) -> dict[str, int]:
    """The model's IR version, its opset of each domain, and the domains its nodes use, against
    what onnxruntime runs; the opsets by domain ("" for the default one) when they pass."""
    supported = supported_versions()
    low, high = supported.ir_versions
    if not low <= model.ir_version <= high:
        raise ModelRefused(
            "ir_version",
            gettext_noop(
                "The model's ONNX IR version is %(version)s; this server runs IR versions "
                "%(low)s to %(high)s."
            ),
            version=model.ir_version,
            low=low,
            high=high,
        )
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    # Operators onnxruntime has no kernel for. Only those nodes use count: exporters import
    # domains they end up not using (onnxruntime ignores those), and a model-local function
    # is called by its own domain.
    local_functions = {function.domain for function in model.functions}
    used = {node.domain for node in _nodes(model)}
    for domain in sorted(used - supported.domains.keys() - local_functions):
        raise ModelRefused(
            "custom_ops",
            gettext_noop(
                "The model uses operators of the domain “%(domain)s”, which this server "
                "cannot run: export it with standard ONNX operators only."
            ),
            domain=domain,
        )
    _check_opsets(opsets, supported)
    return opsets


def _check_opsets(opsets: Mapping[str, int], supported: SupportedVersions) -> None:
    default = [version for domain, version in opsets.items() if domain in DEFAULT_DOMAINS]
    low, high = supported.opsets
    if len(default) != 1 or not low <= default[0] <= high:
        raise ModelRefused(
            "opset",
            gettext_noop(
                "The model uses ONNX opset %(version)s; this server runs opsets %(low)s to "
                "%(high)s."
            ),
            version=", ".join(str(version) for version in default) or "–",
            low=low,
            high=high,
        )
    for domain, version in sorted(opsets.items()):
        newest = supported.domains.get(domain)
        if domain not in DEFAULT_DOMAINS and newest is not None and not 0 < version <= newest:
            raise ModelRefused(
                "opset",
                gettext_noop(
                    "The model uses version %(version)s of the operator domain “%(domain)s”; "
                    "this server runs versions 1 to %(high)s."
                ),
                version=version,
                domain=domain,
                high=newest,
            )


def _check_graph(data: bytes) -> None:
    """The ONNX checker in full (strict shape inference included), on the bytes as uploaded;
    only after ``_refuse_external_data``, since it would look for external files."""
    try:
        onnx.checker.check_model(data, full_check=True)
    except Exception as error:  # the checker's ValidationError, InferenceError and kin
        raise ModelRefused(
            "invalid_graph",
            gettext_noop("The model is not a valid ONNX graph: %(detail)s"),
            detail=_detail(error),
        ) from None


# ---------------------------------------------------------------------------- input, outputs


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorSpec(value.name, kind or "unknown", None)
    tensor = value.type.tensor_type
    shape = None
    if tensor.HasField("shape"):
        shape = tuple(_dim(dim) for dim in tensor.shape.dim)
    return TensorSpec(value.name, _dtype(tensor.elem_type), shape)


def _dim(dim: onnx.TensorShapeProto.Dimension) -> Dim:
    which = dim.WhichOneof("value")
    if which == "dim_value":
        return int(dim.dim_value)
    if which == "dim_param":
        return dim.dim_param or None
    return None


def _dtype(elem_type: int) -> str:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, ValueError, TypeError):
        return onnx.TensorProto.DataType.Name(elem_type) if elem_type else "undefined"


def _image_input(graph: onnx.GraphProto) -> TensorSpec:
    """The one image input: float, N×3×H×W. Before IR 4 initializers were listed among the
    inputs too; they are not inputs a caller feeds."""
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise ModelRefused(
            "no_image_input",
            gettext_noop("The model has %(count)s inputs; a detector takes one, the image."),
            count=len(inputs),
        )
    value = inputs[0]
    spec = _spec(value)
    elem_type = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else 0
    if elem_type not in IMAGE_TYPES:
        raise ModelRefused(
            "no_image_input",
            gettext_noop(
                "The input “%(name)s” holds %(dtype)s values; an image input holds float32 or "
                "float16."
            ),
            name=spec.name,
            dtype=spec.dtype,
        )
    if spec.shape is None or len(spec.shape) != 4 or spec.shape[1] != 3:
        raise ModelRefused(
            "no_image_input",
            gettext_noop(
                "The input “%(name)s” has the shape %(shape)s; an image input is N×3×H×W "
                "(batch, three colour channels, height, width)."
            ),
            name=spec.name,
            shape=spec.shape_text,
        )
    batch, _, height, width = spec.shape
    if any(
        isinstance(side, int) and not 0 < side <= MAX_INPUT_SIDE for side in (height, width)
    ) or (isinstance(batch, int) and not 0 < batch <= MAX_BATCH):
        raise ModelRefused(
            "bad_input",
            gettext_noop(
                "The input “%(name)s” has the shape %(shape)s: a detector takes a batch of 1 to "
                "%(batch)s images of 1 to %(side)s pixels a side."
            ),
            name=spec.name,
            shape=spec.shape_text,
            batch=MAX_BATCH,
            side=MAX_INPUT_SIDE,
        )
    return spec


def _outputs(graph: onnx.GraphProto) -> tuple[TensorSpec, ...]:
    if not graph.output:
        raise ModelRefused("bad_output", gettext_noop("The model has no outputs."))
    specs = tuple(_spec(value) for value in graph.output)
    for spec in specs:
        _check_output(spec)
    return specs


def _check_output(spec: TensorSpec) -> None:
    shape = spec.shape or ()
    if len(shape) > MAX_OUTPUT_RANK:
        raise ModelRefused(
            "bad_output",
            gettext_noop(
                "The output “%(name)s” has %(rank)s dimensions (%(shape)s); a detector's "
                "outputs have at most %(limit)s."
            ),
            name=spec.name,
            rank=len(shape),
            shape=spec.shape_text,
            limit=MAX_OUTPUT_RANK,
        )
    sizes = [dim for dim in shape if isinstance(dim, int)]
    values = 1
    for size in sizes:
        values *= size
    if any(not 0 <= size <= MAX_OUTPUT_DIM for size in sizes) or values > MAX_OUTPUT_VALUES:
        raise ModelRefused(
            "bad_output",
            gettext_noop(
                "The output “%(name)s” is declared %(shape)s: far more values than a detector "
                "returns (at most %(limit)s a dimension and %(values)s in all)."
            ),
            name=spec.name,
            shape=spec.shape_text,
            limit=f"{MAX_OUTPUT_DIM:,}",
            values=f"{MAX_OUTPUT_VALUES:,}",
        )


# ---------------------------------------------------------------------------- text


def shape_text(shape: Shape | None) -> str:
    """``1×3×640×640``; symbolic dimensions by name, unknown ones as ``?``."""
    if shape is None:
        return "?"
    if not shape:
        return "()"
    return "×".join("?" if dim is None else str(dim) for dim in shape)


def size_text(size: int) -> str:
    """A byte count as people read it, in units of 1024 as Django's ``filesizeformat``:
    ``512 bytes``, ``3.2 MB``, ``512 MB`` for a limit of ``512 << 20``."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def _detail(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
