"""Explanations: Grad-CAM / Grad-CAM++ heatmaps and intermediate feature maps.

Works for every architecture of the zoo. Feature layers are named as in the model
(``"block4_conv"``, ``"stage4_out"``) or, for transfer models, ``"backbone"`` (the output of
the ImageNet backbone) and ``"backbone/<layer>"`` for a layer inside it (the bare inner name
works too). By default Grad-CAM uses the last convolutional feature map: the backbone output
for transfer models, the last conv/activation layer otherwise; if that map is 1 x 1 (tiny
input sizes) the last earlier map with some spatial extent is used instead.

Images are anything :func:`pneumozoo.read_xray` accepts; heatmaps come back at the image's
own size, so they overlay the film the user gave.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

from pneumozoo.errors import PneumozooError, UnknownNameError
from pneumozoo.io import ImageSource, atomic_output, read_xray

__all__ = [
    "CAM_METHODS",
    "apply_colormap",
    "feature_layers",
    "feature_map_grid",
    "feature_maps",
    "grad_cam",
    "overlay",
    "save_explanation",
    "save_feature_maps",
]

#: Methods :func:`grad_cam` knows.
CAM_METHODS: tuple[str, ...] = ("gradcam", "gradcam++")
CamMethod = Literal["gradcam", "gradcam++"]

# Layers whose output is not a feature map worth explaining (preprocessing, resampling).
_NOT_FEATURES = ("InputLayer", "XrayPreprocessor", "ClassifierHead", "Resizing", "Normalize",
                 "Rescaling", "Normalization",
                 "ZeroPadding2D", "Dropout", "SpatialDropout2D")
_POOLING = ("MaxPooling2D", "AveragePooling2D")


# --- colours -----------------------------------------------------------------------------
def _jet_lut() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    channels = [np.clip(1.5 - np.abs(4.0 * x - c), 0.0, 1.0) for c in (3.0, 2.0, 1.0)]
    return np.round(np.stack(channels, axis=1) * 255.0).astype(np.uint8)


_JET = _jet_lut()


def apply_colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB with a built-in jet colormap (blue low, red high).

    Args:
        values: Any shape, values in [0, 1] (clipped; NaN counts as 0).

    Returns:
        ``uint8`` array of shape ``values.shape + (3,)``.

    Example:
        >>> apply_colormap(np.array([0.0, 1.0])).tolist()
        [[0, 0, 128], [128, 0, 0]]
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    idx = np.round(np.clip(v, 0.0, 1.0) * 255.0).astype(np.intp)
    return np.asarray(_JET[idx])


# --- finding layers ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    name: str  # as the user writes it: "block4_conv", "backbone", "backbone/conv5_block3_out"
    layer: Any
    backbone: Any = None  # the nested model holding ``layer``, or None for outer layers

    @property
    def spatial(self) -> tuple[int, int]:
        shape = _out_tensor(self.layer).shape if self.backbone is None else self.layer.output.shape
        return int(shape[1] or 0), int(shape[2] or 0)


def _is_nested(layer: Any) -> bool:
    # lazy: loads Keras and its backend
    import keras

    return isinstance(layer, keras.Model)


def _node(layer: Any) -> Any:
    # A nested model's public ``output`` is its own inner graph's; its call in the outer
    # graph is only reachable through its first inbound node (no public Keras API).
    nodes = getattr(layer, "_inbound_nodes", None)
    if not nodes:
        raise PneumozooError(f"layer {layer.name!r} is not connected in the model graph")
    return nodes[0]


def _out_tensor(layer: Any) -> Any:
    """The output tensor of ``layer`` in the outer graph (nested models included)."""
    return _node(layer).output_tensors[0] if _is_nested(layer) else layer.output


def _in_tensor(layer: Any) -> Any:
    return _node(layer).input_tensors[0] if _is_nested(layer) else layer.input


def _is_4d(tensor: Any) -> bool:
    return len(tensor.shape) == 4


def feature_layers(model: Any) -> list[str]:
    """Names of every layer with a 4-D feature-map output, in forward order.

    Transfer models list the inner backbone layers as ``"backbone/<layer>"`` followed by
    ``"backbone"`` itself.

    Example:
        >>> feature_layers(build_model("cnn4", input_size=64))[:2]  # doctest: +SKIP
        ['block1_conv', 'block1_pool']
    """
    return [t.name for t in _targets(model)]


def _targets(model: Any) -> list[_Target]:
    out: list[_Target] = []
    for layer in model.layers:
        if type(layer).__name__ in _NOT_FEATURES:
            continue
        if _is_nested(layer):
            for inner in layer.layers:
                if type(inner).__name__ not in _NOT_FEATURES and _is_4d(inner.output):
                    out.append(_Target(f"{layer.name}/{inner.name}", inner, layer))
        try:
            tensor = _out_tensor(layer)
        except (AttributeError, PneumozooError, ValueError):
            continue
        if _is_4d(tensor):
            out.append(_Target(layer.name, layer))
    return out


def _find(model: Any, name: str) -> _Target:
    targets = _targets(model)
    for t in targets:
        if t.name == name:
            return t
    matches = [t for t in targets if t.backbone is not None and t.layer.name == name]
    if len(matches) == 1:
        return matches[0]
    raise UnknownNameError("feature layer", name, [t.name for t in targets])


def _default_target(model: Any) -> _Target:
    targets = _targets(model)
    if not targets:
        raise PneumozooError(f"model {model.name!r} has no 4-D feature layer to explain")
    nested = [t for t in targets if t.backbone is None and _is_nested(t.layer)]
    if nested:  # transfer model: the backbone output, else the last inner map with extent
        pool = [nested[-1]] + [t for t in reversed(targets) if t.backbone is not None]
    else:
        pool = list(reversed([t for t in targets if t.backbone is None]))
    pool = [t for t in pool if type(t.layer).__name__ not in _POOLING] or pool
    for t in pool:
        if min(t.spatial) >= 2 and _clean_cut(model, t):
            return t
    return pool[0]


def _clean_cut(model: Any, target: _Target) -> bool:
    """True when the model can be split at ``target`` (no branch runs around it): an
    Inception block's inner branches cannot, its concatenated output can."""
    try:
        _cached(model, ("grad", target.name), lambda: _grad_fn(model, target))
    except PneumozooError:
        return False
    return True


# --- forward passes ----------------------------------------------------------------------
def as_classifier(model: Any) -> Any:
    # lazy: loads Keras and its backend
    from pneumozoo.models.classifier import as_classifier as check

    return check(model)


_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], Any]] = (
    weakref.WeakKeyDictionary()
)


def _cached(model: Any, key: tuple[str, ...], make: Callable[[], Any]) -> Any:
    try:
        per_model = _CACHE.setdefault(model, {})
    except TypeError:  # not weak-referenceable: build every time
        return make()
    if key not in per_model:
        per_model[key] = make()
    return per_model[key]


def _grad_fn(model: Any, target: _Target) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """The model split at ``target``: ``(x -> features, features -> logits)``.

    Grad-CAM needs the logits' gradient with respect to the feature map; with the model cut
    there, that is the gradient of the second function at its input, which every backend's
    autodiff gives the same way (:func:`_input_gradient`).
    """
    # lazy: loads Keras and its backend
    import keras

    logits_t = as_classifier(model).head.input[1]
    try:
        if target.backbone is None:
            feats_t = _out_tensor(target.layer)
            to_feats = keras.Model(model.inputs[0], feats_t)
            tail = keras.Model(feats_t, logits_t)
            return (lambda x: to_feats(x, training=False)), (lambda f: tail(f, training=False))
        bb = target.backbone
        pre = keras.Model(model.inputs[0], _in_tensor(bb))
        inner_a = keras.Model(bb.inputs[0], target.layer.output)
        inner_b = keras.Model(target.layer.output, bb.outputs[0])
        rest = keras.Model(_out_tensor(bb), logits_t)
    except ValueError as e:  # a connection around the layer (a skip) makes no clean cut
        raise PneumozooError(f"cannot explain at layer {target.name!r}: the model has connections "
                             "around it; pick another layer (see pneumozoo.explain.feature_layers)") from e
    return ((lambda x: inner_a(pre(x, training=False), training=False)),
            (lambda f: rest(inner_b(f, training=False), training=False)))


def _input_gradient(fn: Callable[[Any], Any], x: np.ndarray, index: int) -> np.ndarray:
    """``d sum(fn(x)[:, index]) / dx`` by the current Keras backend's autodiff, float64."""
    # lazy: loads Keras and its backend
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        # lazy: loads TensorFlow
        import tensorflow as tf

        t = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(t)
            score = tf.reduce_sum(tf.cast(fn(t), tf.float32)[:, index])
        g = tape.gradient(score, t)
    elif backend == "jax":
        # lazy: loads JAX
        import jax
        import jax.numpy as jnp

        g = jax.grad(lambda f: jnp.sum(fn(f).astype(jnp.float32)[:, index]))(jnp.asarray(x))
    elif backend == "torch":
        # lazy: loads PyTorch
        import torch

        t = keras.ops.convert_to_tensor(x)
        t = t.detach().requires_grad_(True)
        with torch.enable_grad():
            score = fn(t).float()[:, index].sum()
            g = torch.autograd.grad(score, t, allow_unused=True)[0]
    else:
        raise PneumozooError(f"Grad-CAM does not support the {backend!r} Keras backend; "
                             "use tensorflow, jax or torch")
    if g is None:  # the class score does not depend on the map
        return np.zeros(x.shape, np.float64)
    return np.asarray(keras.ops.convert_to_numpy(g), dtype=np.float64)


def _model_input(model: Any, image: ImageSource) -> tuple[np.ndarray, np.ndarray]:
    """``(original uint8 image, (1, s, s, 3) float32 batch: the pixels predict feeds)``."""
    original = read_xray(image)
    pixels = as_classifier(model).preprocessor.prepare(original)
    batch = np.repeat(pixels, 3 // pixels.shape[-1], axis=-1).astype(np.float32)[None]
    return original, batch


def _class_index(model: Any, class_index: int | str | None, probs: np.ndarray) -> int:
    clf = as_classifier(model)
    names = list(clf.class_names)
    if class_index is None:  # the class pneumozoo.predict labels the film with
        return names.index(clf.head.label(probs[None])[0])
    if isinstance(class_index, str):
        if class_index not in names:
            raise UnknownNameError("class", class_index, names)
        return names.index(class_index)
    if not 0 <= int(class_index) < len(names):
        raise ValueError(f"class_index {class_index} out of range for classes {', '.join(names)}")
    return int(class_index)


def _resize_map(values: np.ndarray, height: int, width: int) -> np.ndarray:
    img = Image.fromarray(np.asarray(values, dtype=np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def grad_cam(
    model: Any,
    image: ImageSource,
    *,
    class_index: int | str | None = None,
    layer: str | None = None,
    method: CamMethod | str = "gradcam",
) -> np.ndarray:
    """Grad-CAM (or Grad-CAM++) heatmap of one X-ray, at the image's own size.

    The class score is the logit (pre-softmax) of ``class_index``; its gradients with
    respect to the feature map weight the map's channels (Grad-CAM: mean gradient;
    Grad-CAM++: positive gradients weighted by the closed-form alphas of Chattopadhay et
    al. 2018). The ReLU of the weighted sum is scaled to [0, 1] and upsampled bilinearly.

    Args:
        model: A zoo model (any architecture).
        image: Anything :func:`pneumozoo.read_xray` accepts.
        class_index: Class to explain, as an index or a class name; default the class
            :func:`pneumozoo.predict` labels the film with (by the model's threshold).
        layer: Feature layer (see :func:`feature_layers`); default the last conv feature map.
        method: ``"gradcam"`` or ``"gradcam++"``.

    Returns:
        ``float32 (H, W)`` heatmap in [0, 1], where ``(H, W)`` is the input image's size
        (all zeros when no region raises the class score).

    Raises:
        InvalidImageError: If the image cannot be read.
        UnknownNameError: For an unknown method, layer or class name.
        ValueError: For a class index out of range.

    Example:
        >>> heat = grad_cam(model, "person1_virus_6.jpeg")  # doctest: +SKIP
        >>> heat.shape == read_xray("person1_virus_6.jpeg").shape[:2]  # doctest: +SKIP
        True
    """
    # lazy: loads Keras and its backend
    import keras

    if method not in CAM_METHODS:
        raise UnknownNameError("Grad-CAM method", str(method), list(CAM_METHODS))
    target = _find(model, layer) if layer is not None else _default_target(model)
    original, batch = _model_input(model, image)
    to_feats, to_logits = _cached(model, ("grad", target.name), lambda: _grad_fn(model, target))
    feats = np.asarray(keras.ops.convert_to_numpy(to_feats(batch)), dtype=np.float32)
    logits = np.asarray(keras.ops.convert_to_numpy(to_logits(feats)), dtype=np.float64)[0]
    z = logits / as_classifier(model).temperature  # the head's softmax
    probs = np.exp(z - z.max())
    index = _class_index(model, class_index, probs / probs.sum())
    a = feats[0].astype(np.float64)
    g = _input_gradient(to_logits, feats, index)[0]
    if method == "gradcam":
        weights = g.mean(axis=(0, 1))
    else:
        g2, g3 = g**2, g**3
        denom = 2.0 * g2 + a.sum(axis=(0, 1)) * g3
        alphas = g2 / np.where(denom != 0.0, denom, 1.0)
        weights = (alphas * np.maximum(g, 0.0)).sum(axis=(0, 1))
    cam = np.maximum((a * weights).sum(axis=-1), 0.0)
    peak = float(cam.max()) if cam.size else 0.0
    cam = cam / peak if np.isfinite(peak) and peak > 0 else np.zeros_like(cam)
    h, w = original.shape[:2]
    return np.clip(_resize_map(cam, h, w), 0.0, 1.0).astype(np.float32)


def overlay(image: ImageSource, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a heatmap, coloured with a jet colormap, over the X-ray.

    Args:
        image: Anything :func:`pneumozoo.read_xray` accepts.
        heatmap: Values in [0, 1] (resized to the image if its size differs).
        alpha: Weight of the heatmap colour, in [0, 1].

    Returns:
        ``uint8 (H, W, 3)`` image.

    Raises:
        InvalidImageError: If the image cannot be read.
        ValueError: If ``alpha`` is outside [0, 1] or the heatmap is not 2-D.

    Example:
        >>> overlay(np.zeros((8, 6), np.uint8), np.ones((2, 2)), alpha=1.0)[0, 0].tolist()
        [128, 0, 0]
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    base = read_xray(image).astype(np.float32)
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (H, W), got shape {heat.shape}")
    h, w = base.shape[:2]
    if heat.shape != (h, w):
        heat = _resize_map(heat, h, w)
    colour = apply_colormap(heat).astype(np.float32)
    return np.asarray(np.clip((1.0 - alpha) * base + alpha * colour + 0.5, 0, 255), dtype=np.uint8)


def _save_png(array: np.ndarray, out: str | Path) -> Path:
    """Write a PNG where asked, atomically (a temporary file beside it, then renamed)."""
    path = Path(out)
    image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    try:
        with atomic_output(path) as f:
            image.save(f, format="PNG")
    except OSError as e:
        raise PneumozooError(f"{path}: cannot write image ({e})") from None
    return path


def save_explanation(
    model: Any,
    image: ImageSource,
    out: str | Path,
    *,
    class_index: int | str | None = None,
    layer: str | None = None,
    method: CamMethod | str = "gradcam",
    alpha: float = 0.4,
) -> Path:
    """Write the Grad-CAM overlay of one X-ray as a PNG the size of the image.

    Args:
        model: A zoo model.
        image: Anything :func:`pneumozoo.read_xray` accepts.
        out: PNG path (parent folders are created).
        class_index: Class to explain (index or name); default the most probable.
        layer: Feature layer; default the last conv feature map.
        method: ``"gradcam"`` or ``"gradcam++"``.
        alpha: Heatmap weight in the blend.

    Returns:
        The PNG path.

    Raises:
        InvalidImageError: If the image cannot be read.
        PneumozooError: If the PNG cannot be written; see :func:`grad_cam` for the others.

    Example:
        >>> save_explanation(model, "xray.jpeg", "xray_gradcam.png")  # doctest: +SKIP
        PosixPath('xray_gradcam.png')
    """
    original = read_xray(image)
    heat = grad_cam(model, original, class_index=class_index, layer=layer, method=method)
    return _save_png(overlay(original, heat, alpha=alpha), out)


# --- feature maps ------------------------------------------------------------------------
def _default_feature_targets(model: Any, limit: int = 6) -> list[_Target]:
    targets = _targets(model)
    convs = [t for t in targets if "Conv" in type(t.layer).__name__] or targets
    if len(convs) <= limit:
        return convs
    picks = np.unique(np.round(np.linspace(0, len(convs) - 1, limit)).astype(int))
    return [convs[i] for i in picks]


def _features_fn(model: Any, targets: Sequence[_Target]) -> Callable[[Any], list[Any]]:
    # lazy: loads Keras and its backend
    import keras

    outer = [t for t in targets if t.backbone is None]
    outer_model = (keras.Model(model.inputs[0], [_out_tensor(t.layer) for t in outer])
                   if outer else None)
    by_backbone: dict[int, tuple[Any, list[_Target]]] = {}
    for t in targets:
        if t.backbone is not None:
            by_backbone.setdefault(id(t.backbone), (t.backbone, []))[1].append(t)
    inner_models = []
    for bb, ts in by_backbone.values():
        pre = keras.Model(model.inputs[0], _in_tensor(bb))
        inner = keras.Model(bb.inputs[0], [t.layer.output for t in ts])
        inner_models.append((pre, inner, ts))

    def run(x: Any) -> list[Any]:
        found: dict[str, Any] = {}
        if outer_model is not None:
            values = outer_model(x, training=False)
            values = values if isinstance(values, (list, tuple)) else [values]
            found.update({t.name: v for t, v in zip(outer, values, strict=True)})
        for pre, inner, ts in inner_models:
            values = inner(pre(x, training=False), training=False)
            values = values if isinstance(values, (list, tuple)) else [values]
            found.update({t.name: v for t, v in zip(ts, values, strict=True)})
        return [found[t.name] for t in targets]

    return run


def feature_maps(
    model: Any,
    image: ImageSource,
    layers: Sequence[str] | None = None,
    *,
    max_channels: int = 16,
) -> dict[str, np.ndarray]:
    """Activations of intermediate layers for one X-ray (as 003 visualised them).

    Args:
        model: A zoo model.
        image: Anything :func:`pneumozoo.read_xray` accepts.
        layers: Layer names (see :func:`feature_layers`); default up to six convolution
            layers spread from the first to the last.
        max_channels: Keep the first ``max_channels`` channels of each map.

    Returns:
        Layer name -> ``float32 (h, w, c)`` activations, in the order asked.

    Raises:
        InvalidImageError: If the image cannot be read.
        UnknownNameError: For an unknown layer name.
        ValueError: If ``max_channels < 1``.

    Example:
        >>> maps = feature_maps(model, "xray.jpeg", ["block1_conv"])  # doctest: +SKIP
        >>> maps["block1_conv"].shape  # doctest: +SKIP
        (126, 126, 16)
    """
    # lazy: loads Keras and its backend
    import keras

    if max_channels < 1:
        raise ValueError(f"max_channels must be at least 1, got {max_channels}")
    targets = (_default_feature_targets(model) if layers is None
               else [_find(model, name) for name in layers])
    if not targets:
        raise PneumozooError(f"model {model.name!r} has no feature layers")
    _, batch = _model_input(model, image)
    key = ("features", *(t.name for t in targets))
    fn = _cached(model, key, lambda: _features_fn(model, targets))
    values = fn(batch)
    names = list(layers) if layers is not None else [t.name for t in targets]
    return {name: np.asarray(keras.ops.convert_to_numpy(v), np.float32)[0, :, :, :max_channels]
            for name, v in zip(names, values, strict=True)}


def feature_map_grid(
    maps: dict[str, np.ndarray],
    *,
    tile: int = 64,
    pad: int = 2,
    labels: bool = True,
) -> np.ndarray:
    """Tile feature maps into one image: a row per layer, a tile per channel.

    Each channel is scaled to its own min..max and shown in grey (a constant channel is
    black); a caption above each row names the layer and its map size.

    Args:
        maps: Layer name -> ``(h, w, c)`` array, as :func:`feature_maps` returns.
        tile: Side of one channel tile in pixels.
        pad: Gap between tiles in pixels.
        labels: Write the layer names.

    Returns:
        ``uint8 (H, W, 3)`` grid image.

    Raises:
        ValueError: If ``maps`` is empty or a map is not 3-D.

    Example:
        >>> grid = feature_map_grid({"a": np.random.rand(8, 8, 4)}, tile=16, pad=2)
        >>> grid.shape
        (34, 74, 3)
    """
    if not maps:
        raise ValueError("feature_map_grid needs at least one feature map")
    for name, m in maps.items():
        if np.asarray(m).ndim != 3:
            raise ValueError(f"feature map {name!r} must be (h, w, c), got shape {np.shape(m)}")
    caption = 14 if labels else 0
    cols = max(int(np.asarray(m).shape[-1]) for m in maps.values())
    width = pad + cols * (tile + pad)
    row_h = caption + tile + pad
    grid = np.full((pad + len(maps) * row_h, width, 3), 255, dtype=np.uint8)
    for r, m in enumerate(maps.values()):
        arr = np.asarray(m, dtype=np.float32)
        y0 = pad + r * row_h + caption
        for c in range(arr.shape[-1]):
            ch = arr[:, :, c]
            lo, hi = float(np.nanmin(ch)), float(np.nanmax(ch))
            scaled = (ch - lo) / (hi - lo) if hi > lo else np.zeros_like(ch)
            img = Image.fromarray(np.round(np.nan_to_num(scaled) * 255).astype(np.uint8), mode="L")
            img = img.resize((tile, tile), Image.Resampling.NEAREST)
            x0 = pad + c * (tile + pad)
            grid[y0:y0 + tile, x0:x0 + tile, :] = np.asarray(img)[:, :, None]
    if labels:
        canvas = Image.fromarray(grid)
        draw = ImageDraw.Draw(canvas)
        for r, (name, m) in enumerate(maps.items()):
            h, w, c = np.asarray(m).shape
            draw.text((pad, pad + r * row_h + 1), f"{name}  {h}x{w}, {c} ch", fill=(0, 0, 0))
        grid = np.asarray(canvas)
    return grid


def save_feature_maps(
    model: Any,
    image: ImageSource,
    out: str | Path,
    layers: Sequence[str] | None = None,
    *,
    max_channels: int = 16,
    tile: int = 64,
) -> Path:
    """Write the feature-map grid of one X-ray as a PNG (see :func:`feature_map_grid`).

    Args:
        model: A zoo model.
        image: Anything :func:`pneumozoo.read_xray` accepts.
        out: PNG path (parent folders are created).
        layers: Layer names; default up to six convolution layers.
        max_channels: Channels per layer.
        tile: Tile side in pixels.

    Returns:
        The PNG path.

    Raises:
        InvalidImageError: If the image cannot be read.
        UnknownNameError: For an unknown layer name.
        PneumozooError: If the PNG cannot be written.

    Example:
        >>> save_feature_maps(model, "xray.jpeg", "features.png")  # doctest: +SKIP
        PosixPath('features.png')
    """
    maps = feature_maps(model, image, layers, max_channels=max_channels)
    return _save_png(feature_map_grid(maps, tile=tile), out)
