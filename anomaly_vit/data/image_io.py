"""Decode image and mask files with PIL into numpy arrays, with clear errors for bad files.

Every PIL mode becomes uint8 RGB (`load_rgb`) with these rules:

- ``1``, ``L``: gray copied to the three channels (``1`` gives 0 or 255).
- ``I;16``, ``I;16L``, ``I;16B``, ``I;16N``: 16-bit values scaled to 8 bits by the bit depth,
  ``round(value / 257)`` (65535 -> 255), never clipped.
- ``I`` (signed 32-bit int): scaled by the bit depth the file declares (TIFF ``BitsPerSample``),
  else taken as 16-bit (Pillow's "I" mostly holds 16-bit data); full scale is
  ``min(2**bits - 1, 2**31 - 1)`` (the largest value "I" can hold); negative values become 0.
- ``F`` (float): Pillow's convention, values on the 0..255 scale, rounded and clipped; NaN -> 0.
  A float image whose values all lie in 0..1 is almost black: a warning says so.
- Any alpha (``RGBA``, ``LA``, ``PA``, ``RGBa``, ``P``/``L``/``RGB`` with a transparency colour):
  **composited on black**, i.e. ``round(rgb * alpha / 255)``: fully transparent pixels are black,
  whatever colour the file stores under them.
- ``P`` (palette): each index becomes its palette colour.
- ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` and other modes: Pillow's ``convert("RGB")``.

Multi-frame files (TIFF stacks, animations) yield their first frame.

`read_image` / `load_rgb_info` also return an `ImageInfo` (mode, size, bytes and a hash of the
file's bytes) from the same single read, for the data report (odd modes and sizes, duplicates).
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from anomaly_vit.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
)

UINT8_MAX = 255
DEFAULT_INT_BIT_DEPTH = 16  # bit depth assumed for mode "I" when the file declares none
INT32_MAX = 2**31 - 1  # largest value of Pillow's signed mode "I"
ASPECT_TOLERANCE = 0.02  # relative width/height difference of a mask and its image, warned above
TIFF_BITS_PER_SAMPLE = 258  # TIFF tag holding the bit depth


@dataclass(frozen=True)
class ImageInfo:
    """What the data report needs to know about one decoded file."""

    path: str
    mode: str  # PIL mode as stored in the file, before conversion to RGB
    width: int
    height: int
    n_bytes: int
    sha256: str  # hash of the file's bytes: equal hashes are duplicate files
    constant: bool = False  # every pixel has the same RGB value (a blank image)


class BadImageError(DataError):
    """An image or mask file that cannot be decoded; the message names the file and a fix."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"bad image file '{self.path}': {reason}")


def is_image_file(path: str | Path) -> bool:
    """True for a visible file whose extension is one of `IMAGE_EXTENSIONS` (case-insensitive)."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode `path` (``img.load()``), turning every user-caused failure into
    a `BadImageError`. The file is read into memory and closed."""
    return read_image(path)[0]


def read_image(path: str | Path) -> tuple[Image.Image, ImageInfo]:
    """Read `path` once, hash its bytes and decode it: (decoded image, `ImageInfo`).

    Raises `BadImageError` for a missing, empty, unreadable, corrupt or oversized file.
    """
    path = Path(path)
    if not path.exists():
        raise BadImageError(path, "file does not exist; check the path in your data config")
    if path.is_dir():
        raise BadImageError(
            path, "is a directory, not an image file; rename it or move it out of the data folder"
        )
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BadImageError(path, f"cannot be read ({err}); check its permissions") from err
    if not data:
        raise BadImageError(path, "file is empty (0 bytes); re-export or delete it")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                mode = img.mode
                img.load()
        except Image.DecompressionBombError as err:
            raise BadImageError(path, _bomb_reason(err, refused=True)) from err
        except UnidentifiedImageError as err:
            raise BadImageError(
                path,
                "not a recognised image (wrong extension, a text file or corrupt header); "
                "re-export it or delete it",
            ) from err
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise BadImageError(
                path,
                f"could not be decoded, the file is truncated or corrupt ({err}); "
                "re-export or delete it",
            ) from err
    for warning in caught:
        if issubclass(warning.category, Image.DecompressionBombWarning):
            log.warning("image file '%s': %s", path, _bomb_reason(warning.message, refused=False))
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    info = ImageInfo(
        path=str(path),
        mode=mode,
        width=img.width,
        height=img.height,
        n_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return img, info


def _bomb_reason(err: object, refused: bool) -> str:
    action = "refused to decode it" if refused else "decoded it, but it is unusually large"
    return (
        f"{err} Pillow {action} (limit PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}). "
        "If the image is genuine, downscale it or raise Image.MAX_IMAGE_PIXELS before loading."
    )


def to_rgb_array(img: Image.Image, path: str | Path = "<image>") -> np.ndarray:
    """Convert a decoded PIL image of any mode to a uint8 HxWx3 array (rules in module doc)."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        gray = _scale_int_to_uint8(img)
    elif mode == "F":
        gray = _float_to_uint8(np.asarray(img, dtype=np.float64), path)
    elif img.has_transparency_data:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
        rgb = rgba[..., :3] * rgba[..., 3:] / UINT8_MAX
        return np.floor(rgb + 0.5).astype(np.uint8)
    else:
        return np.array(img.convert("RGB"), dtype=np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def _int_bit_depth(img: Image.Image) -> int:
    if img.mode.startswith("I;16"):
        return 16
    tag = getattr(img, "tag_v2", None)
    bits = tag.get(TIFF_BITS_PER_SAMPLE) if tag is not None else None
    if isinstance(bits, tuple):
        bits = bits[0] if bits else None
    return int(bits) if bits else DEFAULT_INT_BIT_DEPTH


def _scale_int_to_uint8(img: Image.Image) -> np.ndarray:
    full_scale = float(min(2 ** _int_bit_depth(img) - 1, INT32_MAX))
    values = np.clip(np.asarray(img).astype(np.float64), 0.0, full_scale)
    return np.floor(values * UINT8_MAX / full_scale + 0.5).astype(np.uint8)


def _float_to_uint8(values: np.ndarray, path: str | Path) -> np.ndarray:
    values = np.nan_to_num(values, nan=0.0, posinf=UINT8_MAX, neginf=0.0)
    if values.size and values.max() <= 1.0 and values.max() > 0.0:
        log.warning(
            "float image '%s' has all values in 0..1; it is read on Pillow's 0..255 scale and "
            "will look almost black: save it as 8- or 16-bit, or scale it to 0..255",
            path,
        )
    return np.clip(np.floor(values + 0.5), 0, UINT8_MAX).astype(np.uint8)


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to a uint8 HxWx3 RGB array; raises `BadImageError` for bad files."""
    return to_rgb_array(open_image(path), path)


def load_rgb_info(path: str | Path) -> tuple[np.ndarray, ImageInfo]:
    """`load_rgb` and the file's `ImageInfo` (with `constant` set), from one read and decode."""
    img, info = read_image(path)
    rgb = to_rgb_array(img, path)
    constant = bool(rgb.size) and bool((rgb == rgb.reshape(-1, 3)[0]).all())
    return rgb, replace(info, constant=constant)


def load_mask(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a mask file to a bool HxW array, True where the pixel is nonzero (= defect).

    Nonzero is judged on the raw values for 16-bit / int / float masks (so a 16-bit value of 1
    counts), and on the RGB colour otherwise (a palette index counts by its colour; transparent
    pixels are black, hence no defect). `size` is (height, width), e.g. ``image.shape[:2]``: the
    mask is resized to it with nearest-neighbour sampling when it differs.
    """
    img = open_image(path)
    if img.mode.startswith("I") or img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        mask = np.isfinite(values) & (values != 0)
    else:
        mask = to_rgb_array(img, path).any(axis=2)
    if size is not None and tuple(mask.shape) != tuple(size):
        height, width = (int(s) for s in size)
        mask_h, mask_w = mask.shape
        if abs(mask_w / mask_h - width / height) > ASPECT_TOLERANCE * (width / height):
            log.warning(
                "mask '%s' is %dx%d (w x h) but its image is %dx%d, another aspect ratio: it is "
                "stretched to fit; check that the mask belongs to this image",
                path, mask_w, mask_h, width, height,
            )  # fmt: skip
        mask = resize_mask(mask, (height, width))
    return mask


def resize_image(image_hw3: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A uint8 HxWx3 image resized to `size_hw` with bilinear filtering (how every image the
    model sees is brought to its input size)."""
    height, width = size_hw
    return np.asarray(Image.fromarray(image_hw3).resize((width, height), Image.BILINEAR))


def resize_mask(mask_hw: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A bool HxW mask resized to `size_hw` with nearest-neighbour sampling."""
    height, width = size_hw
    resized = Image.fromarray(mask_hw.astype(np.uint8) * UINT8_MAX).resize(
        (width, height), Image.NEAREST
    )
    return np.asarray(resized) > 0
