"""Errors of the ML library; they subclass the app's domain errors so views answer 4xx."""

from __future__ import annotations

from labeler.errors import LabelerError, NotFound, ValidationError


class MLError(LabelerError):
    """Base class of the ML library's errors."""

    status, code = 400, "ml_error"


class ModelNotFound(NotFound):
    """No trained model folder with that id (or it is incomplete)."""

    code = "model_not_found"


class BadImage(ValidationError):
    """The input to predict is not a usable image (not an image, too large, too small)."""

    code = "bad_image"


class ManifestError(MLError):
    """The training manifest is unreadable or malformed."""

    status, code = 422, "bad_manifest"


class NotEnoughData(MLError):
    """Too few usable labeled images to train or evaluate."""

    status, code = 422, "not_enough_data"


class MLUnavailable(MLError):
    """The optional ML dependencies are missing: install them with `pip install -e .[ml]`."""

    status, code = 503, "ml_unavailable"


class FineTuneUnavailable(MLError):
    """Fine-tuning backbone blocks was asked for on a worker without a GPU (and not forced)."""

    status, code = 422, "fine_tune_unavailable"
