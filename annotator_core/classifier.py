"""The per-label classifier: logistic regression on L2-normalised shot embeddings.

Logistic regression gives probabilities that mean something (the borderline
feed ranks shots by |p − 0.5| and the scoring service hands p to downstream
apps), trains in milliseconds on a few thousand labels, and scores a corpus with
one matrix product. A trained model is a coefficient vector and an intercept,
pinned to the encoder (name and dimension) whose embeddings it was trained on.

Serialised form (``to_bytes``): a magic line, one JSON header line, then the
coefficients as little-endian float32. No pickle, so a stored model can be
loaded without trusting it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotator_core.errors import DimensionMismatch, ValidationFailed

MAGIC = b"VA-CLASSIFIER/1\n"
# Rows with a smaller norm are treated as this norm (a zero vector scores the intercept alone).
NORM_FLOOR = 1e-12
# Corpus rows sampled for the centring mean: its error (~1/sqrt(8192) of the spread) is far below the offset.
CENTRE_SAMPLE = 8192
# A corpus whose rows all point one way (‖mean‖ → 1) would blow the rescaled rows up; floor the scale.
MIN_CENTRED_SCALE = 1e-3


@dataclass(frozen=True)
class Classifier:
    """A trained binary classifier: P(positive | x) = sigmoid(x̂ · coef + intercept), x̂ = x / ‖x‖."""

    encoder: str
    dim: int
    coef: np.ndarray  # float32 [dim]
    intercept: float
    info: dict[str, Any] = field(default_factory=dict)  # C, n_pos, n_neg, iterations

    def __post_init__(self) -> None:
        coef = np.ascontiguousarray(self.coef, dtype=np.float32).ravel()
        if coef.shape[0] != self.dim:
            raise DimensionMismatch(f"classifier has {coef.shape[0]} coefficients but dim={self.dim}.")
        object.__setattr__(self, "coef", coef)
        object.__setattr__(self, "intercept", float(self.intercept))

    def check(self, x: np.ndarray) -> np.ndarray:
        """``x`` as a float32 [n, dim] matrix, or :class:`DimensionMismatch` naming both widths."""
        arr = np.asarray(x)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise DimensionMismatch(
                f"embeddings have shape {tuple(np.shape(x))} but this classifier expects [n, {self.dim}] "
                f"({self.encoder or 'unknown encoder'}); embed with the same encoder the label was built on."
            )
        return arr if arr.dtype == np.float32 else arr.astype(np.float32)

    def decision_function(self, x: np.ndarray, *, normalised: bool = False) -> np.ndarray:
        """Log-odds of positive, float32 [n]. ``normalised=True`` skips the norm pass for unit rows."""
        arr = self.check(x)
        logits = arr @ self.coef  # one float32 matrix-vector product, no float64 copy of x
        if not normalised:
            norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float32))
            np.maximum(norms, NORM_FLOOR, out=norms)
            logits /= norms
        logits += np.float32(self.intercept)
        return logits

    def predict_proba(self, x: np.ndarray, *, normalised: bool = False) -> np.ndarray:
        """P(positive) per row, float32 [n]. Rows are L2-normalised first unless ``normalised``."""
        return sigmoid(self.decision_function(x, normalised=normalised))

    def to_bytes(self) -> bytes:
        header = {
            "encoder": self.encoder,
            "dim": self.dim,
            "intercept": self.intercept,
            "info": self.info,
        }
        return MAGIC + json.dumps(header).encode() + b"\n" + self.coef.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Classifier:
        if not data.startswith(MAGIC):
            raise ValidationFailed(
                "these bytes are not a Video Annotator classifier (missing the VA-CLASSIFIER/1 header); "
                "pass the model bytes of a saved classifier version."
            )
        rest = data[len(MAGIC) :]
        end = rest.find(b"\n")
        try:
            header = json.loads(rest[:end])
            dim = int(header["dim"])
        except (ValueError, KeyError) as exc:
            raise ValidationFailed(f"classifier header is unreadable ({exc}); the stored model is corrupt.") from None
        body = rest[end + 1 :]
        if len(body) != 4 * dim:
            raise ValidationFailed(
                f"classifier body holds {len(body)} bytes but dim={dim} needs {4 * dim}; the stored model is corrupt."
            )
        coef = np.frombuffer(body, dtype="<f4").astype(np.float32)
        return cls(
            encoder=str(header.get("encoder", "")),
            dim=dim,
            coef=coef,
            intercept=float(header["intercept"]),
            info=dict(header.get("info") or {}),
        )


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function, in place on a float32 array it owns."""
    out = np.asarray(logits, dtype=np.float32)
    np.clip(out, -80.0, 80.0, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


def l2_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (float32 copy)."""
    arr = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float32))
    np.maximum(norms, NORM_FLOOR, out=norms)
    return arr / norms[:, None]


def check_training_data(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate (x, y) for training: 2-d float matrix, one label per row, both classes present."""
    arr = np.asarray(x)
    labels = np.asarray(y)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValidationFailed(f"x must be a non-empty [n, dim] matrix, got shape {arr.shape}.")
    if labels.ndim != 1 or labels.shape[0] != arr.shape[0]:
        raise ValidationFailed(f"y must hold one label per row of x ({arr.shape[0]}), got shape {labels.shape}.")
    labels = labels.astype(bool)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.shape[0]:
        raise ValidationFailed(
            f"training needs both positive and negative examples, got {n_pos} positive and "
            f"{labels.shape[0] - n_pos} negative; label at least one of each."
        )
    if not np.all(np.isfinite(arr)):
        raise ValidationFailed("x contains NaN or infinite values; re-embed the affected shots.")
    return l2_rows(arr), labels


def fit_logistic(
    x_unit: np.ndarray,
    y: np.ndarray,
    *,
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 200,
    tol: float = 1e-4,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, float, int]:
    """L2-regularised logistic regression on unit rows; returns (coef, intercept, iterations).

    Minimises ½‖w‖² + C·Σ log(1 + exp(−yᵢ(w·xᵢ + b))) (divided by C·n) with L-BFGS — scikit-learn's
    ``LogisticRegression(solver="lbfgs")`` objective and stopping rule, without its per-call
    overhead, which dominated at the few thousand rows a label has.
    ``start`` (float [dim + 1], coefficients then intercept) warm-starts the solver, e.g. from the
    previous fold of a cross-validation. ``seed`` is accepted for a uniform interface; the solver
    is deterministic.
    """
    from scipy.optimize import minimize

    del seed
    x64 = np.ascontiguousarray(x_unit, dtype=np.float64)
    sign = np.where(np.asarray(y, dtype=bool), 1.0, -1.0)
    dim = x64.shape[1]
    start = np.zeros(dim + 1) if start is None else np.asarray(start, dtype=np.float64).ravel()
    if start.shape[0] != dim + 1:
        raise DimensionMismatch(f"warm start has {start.shape[0]} values; expected dim + 1 = {dim + 1}.")

    # Divided by the row count like scikit-learn's, so its gradient tolerance means the same here.
    scale = 1.0 / (C * x64.shape[0])

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        w = params[:dim]
        margin = sign * (x64 @ w + params[dim])
        loss = C * scale * float(np.logaddexp(0.0, -margin).sum()) + 0.5 * scale * float(w @ w)
        dz = -C * scale * sign * _expit(-margin)
        grad = np.empty_like(params)
        grad[:dim] = x64.T @ dz + scale * w
        grad[dim] = dz.sum()
        return loss, grad

    # A few thousand rows are too small to split across threads; with other work on the machine,
    # spinning BLAS threads made a 20 ms fit take over a second (measured on 2 cores).
    with _threadpools().limit(limits=1):
        result = minimize(
            loss_and_grad,
            start,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * np.finfo(float).eps},
        )
    params = result.x
    return params[:dim].astype(np.float32), float(params[dim]), int(result.nit)


@functools.cache
def _threadpools() -> Any:
    """One threadpool controller per process: ``threadpool_limits()`` re-scans the loaded libraries
    on every call (~10 ms), which dominated the 50 small fits of a 20-label quality estimate."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _expit(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def unit_mean(matrix: np.ndarray, *, sample: int = CENTRE_SAMPLE) -> np.ndarray:
    """Mean of the unit rows of ``matrix`` (a corpus, or a label's labelled set), float32 [dim].

    An evenly strided sample of ``sample`` rows: O(sample · dim) whatever the corpus size (8,192
    rows of 512 floats: 16 MB read, a few ms at 10M shots), the same rows every time.
    """
    arr = np.asarray(matrix)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValidationFailed(f"corpus matrix must be a non-empty [n, dim] matrix, got shape {arr.shape}.")
    step = max(1, arr.shape[0] // max(1, sample))
    rows = l2_rows(arr[::step][:sample])
    return rows.mean(axis=0, dtype=np.float64).astype(np.float32)


@dataclass(frozen=True)
class Centring:
    """x̂ ↦ (x̂ − mean) / scale: the corpus mean removed, rows back to unit RMS norm.

    For unit rows E‖x̂ − μ‖² = 1 − ‖μ‖², so ``scale`` needs no second pass over the corpus. Both
    fold into the linear model afterwards (w ← w / scale, b ← b − μ·w / scale), so a centred
    classifier exports and scores exactly like any other.
    """

    mean: np.ndarray  # float64 [dim]
    scale: float

    @classmethod
    def of(cls, mean: np.ndarray | None, dim: int) -> Centring:
        """The centring for a corpus mean (``None``: no centring, the identity)."""
        if mean is None:
            return cls(np.zeros(dim), 1.0)
        mu = np.asarray(mean, dtype=np.float64).ravel()
        if mu.shape[0] != dim:
            raise DimensionMismatch(f"corpus mean has {mu.shape[0]} values but the vectors have {dim}.")
        if not np.all(np.isfinite(mu)):
            raise ValidationFailed("corpus mean contains NaN or infinite values; recompute it from the vectors.")
        return cls(mu, float(np.sqrt(max(1.0 - float(mu @ mu), MIN_CENTRED_SCALE**2))))

    def apply(self, x_unit: np.ndarray) -> np.ndarray:
        """Centred and rescaled copy of unit rows (float64)."""
        return (np.asarray(x_unit, dtype=np.float64) - self.mean) / self.scale

    def fold(self, coef: np.ndarray, intercept: float) -> tuple[np.ndarray, float]:
        """The (coef, intercept) that give the same logits on uncentred unit rows."""
        w = np.asarray(coef, dtype=np.float64) / self.scale
        return w.astype(np.float32), float(intercept - self.mean @ w)

    def unfold(self, model: Classifier) -> np.ndarray:
        """Inverse of :meth:`fold`: ``model``'s parameters on centred rows, float64 [dim + 1] (a warm start)."""
        w = np.asarray(model.coef, dtype=np.float64)
        return np.append(w * self.scale, model.intercept + float(self.mean @ w))


def train(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 0,
    encoder: str = "",
    C: float = 1.0,
    centre: np.ndarray | None = None,
) -> Classifier:
    """Train a label's classifier on embeddings ``x`` (float [n, dim]) and labels ``y`` (bool/0-1 [n]).

    ``centre`` (a mean of unit rows, :func:`unit_mean`) centres the rows before fitting and
    rescales them to unit RMS norm. Embeddings such as CLIP's share a large common offset: the
    rows differ in a small part of their length, so a fixed C regularises far too hard, the
    solver is ill-conditioned, and 20 labels can give a one-class model. The intercept is not
    penalised, so the corpus mean and the labelled set's own mean give the same fit (measured:
    identical AP and quality to 3 decimals); builds use the labelled mean, which needs no corpus
    pass. Centring folds into the intercept: the model's form and its ONNX export are unchanged.
    """
    if C <= 0:
        raise ValidationFailed(f"C must be positive (inverse regularisation strength), got {C}.")
    x_unit, labels = check_training_data(x, y)
    centring = Centring.of(centre, int(x_unit.shape[1]))
    coef, intercept, n_iter = fit_logistic(centring.apply(x_unit), labels, C=C, seed=seed)
    coef, intercept = centring.fold(coef, intercept)
    n_pos = int(labels.sum())
    return Classifier(
        encoder=encoder,
        dim=int(x_unit.shape[1]),
        coef=coef,
        intercept=intercept,
        info={
            "C": C,
            "n_pos": n_pos,
            "n_neg": int(labels.shape[0] - n_pos),
            "iterations": n_iter,
            "centred": centre is not None,
        },
    )
