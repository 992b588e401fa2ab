"""Label vocabularies and the training configs stored inside every model folder (no torch here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

BACKBONE_BLOCKS = 16  # MBConv blocks of EfficientNet-Lite0 (the most fine_tune_blocks can be)
QUALITY_CLASSES: tuple[str, ...] = ("lesion", "no_skin", "healthy_skin", "poor_quality")
# "lesion_covered" is recorded by raters but, as in the ImageQX paper, not predicted.
EXPLANATIONS: tuple[str, ...] = (
    "too_far_away",
    "bad_framing",
    "blurry",
    "bad_light",
    "low_resolution",
)
# As Google's DermAssist does: say what is wrong and how to fix it.
EXPLANATION_TEXT: dict[str, str] = {
    "too_far_away": "The skin is too far away: move the camera closer",
    "bad_framing": "The skin is not centred in the photo: frame it in the middle",
    "blurry": "The photo is blurry: hold the camera steady",
    "bad_light": "The lighting is poor: use even, bright light without shadows",
    "low_resolution": "The photo has too little detail: use a higher resolution",
}
SEVERITY_EDGES: tuple[float, ...] = (1.5, 2.5, 3.5, 4.5)
SEVERITY_SCALE: tuple[float, float] = (1.0, 5.0)
IMAGE_SIZE = 224
FEATURE_DIM = 1280
BACKBONE = "efficientnet-lite0"
# Bump when preprocessing or the exported backbone changes: it keys the feature cache.
FEATURE_VERSION = "lite0-v1"


@dataclass
class _Config:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        kwargs = {
            k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known
        }
        return cls(**kwargs)


@dataclass
class QualityConfig(_Config):
    """The ImageQX paper's two linear blocks over frozen EfficientNet-Lite0 features."""

    kind: str = "quality"
    backbone: str = BACKBONE
    feature_version: str = FEATURE_VERSION
    classes: tuple[str, ...] = QUALITY_CLASSES
    explanations: tuple[str, ...] = EXPLANATIONS
    hidden: int = 64
    dropout: float = 0.2
    ce_weight: float = 1.0
    bce_weight: float = 5.0
    max_class_weight: float = 10.0
    epochs: int = 150
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    restart_period: int = 50  # CosineAnnealingWarmRestarts T_0, in epochs
    val_fraction: float = 0.2
    flip_augment: bool = True  # horizontal flips of training images (features cached too)
    seed: int = 0
    # Issue 16 section 5 (finetune.py): 0 = the frozen backbone. N > 0 trains the last N blocks
    # (and the head convolution) with the heads at fine_tune_lr_scale x lr; needs CUDA unless
    # fine_tune_on_cpu (tests, the small CPU benchmark).
    fine_tune_blocks: int = 0
    fine_tune_lr_scale: float = 0.1
    fine_tune_on_cpu: bool = False


@dataclass
class SeverityConfig(_Config):
    """The acne severity study: face skin patches, rolling augmentation, Lite0 features, MLP regressor."""

    kind: str = "severity"
    backbone: str = BACKBONE
    feature_version: str = FEATURE_VERSION
    hidden: tuple[int, ...] = (1024, 512, 256)
    landmarks: str = "dlib5"  # "dlib5" (public-domain 5-point model) or "haar"
    scale: tuple[float, float] = SEVERITY_SCALE
    edges: tuple[float, ...] = SEVERITY_EDGES
    max_rolls: int = 4  # at most this many rolled copies per patch when balancing grades
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
