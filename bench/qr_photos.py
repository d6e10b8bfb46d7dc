"""QR codes drawn onto photos for the benchmarks and the tests: printed flat, or shown on a phone
screen held up to the camera (tilted, blurred, with glare)."""

from __future__ import annotations

import cv2
import numpy as np
import qrcode

__all__ = ["on_phone", "pasted", "phone_side", "qr_image"]


def qr_image(text: str, module_px: int = 6) -> np.ndarray:
    """The QR code of ``text`` as a BGR image, ``module_px`` pixels a module, quiet zone kept."""
    code = qrcode.QRCode(border=4, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    code.make()
    grey = np.where(np.array(code.get_matrix(), dtype=bool), 0, 255).astype(np.uint8)
    size = grey.shape[0] * module_px
    grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def pasted(photo: np.ndarray, patch: np.ndarray, x: int, y: int) -> np.ndarray:
    out = photo.copy()
    h, w = patch.shape[:2]
    out[y : y + h, x : x + w] = patch
    return out


def on_phone(
    photo: np.ndarray, qr: np.ndarray, *, angle: float, blur: int, x: int, y: int
) -> np.ndarray:
    """``qr`` on a phone held up in ``photo``: a dark body around a bright screen, turned by
    ``angle`` degrees, a little glare, then the whole frame blurred by a ``blur`` px kernel."""
    side = qr.shape[0]
    screen = cv2.convertScaleAbs(qr, alpha=0.85, beta=30)  # a backlit screen is never pure black
    phone = np.full((int(side * 1.9), side + 40, 3), 25, dtype=np.uint8)
    top = (phone.shape[0] - side) // 2
    phone[top : top + side, 20 : 20 + side] = screen
    glare = np.zeros_like(phone)
    cv2.ellipse(
        glare, (side // 3, top + side // 4), (side // 3, side // 8), 30, 0, 360, (60, 60, 60), -1
    )
    phone = cv2.add(phone, glare)
    diagonal = int(np.hypot(*phone.shape[:2])) + 4
    canvas = np.zeros((diagonal, diagonal, 3), dtype=np.uint8)
    mask = np.zeros((diagonal, diagonal), dtype=np.uint8)
    oy, ox = (diagonal - phone.shape[0]) // 2, (diagonal - phone.shape[1]) // 2
    canvas[oy : oy + phone.shape[0], ox : ox + phone.shape[1]] = phone
    mask[oy : oy + phone.shape[0], ox : ox + phone.shape[1]] = 255
    turn = cv2.getRotationMatrix2D((diagonal / 2, diagonal / 2), angle, 1.0)
    canvas = cv2.warpAffine(canvas, turn, (diagonal, diagonal), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(mask, turn, (diagonal, diagonal), flags=cv2.INTER_NEAREST)
    out = photo.copy()
    region = out[y : y + diagonal, x : x + diagonal]
    region[mask > 0] = canvas[mask > 0]
    if blur > 1:
        out = cv2.GaussianBlur(out, (blur | 1, blur | 1), 0)
    return out


def phone_side(qr: np.ndarray) -> int:
    """The square :func:`on_phone` needs in the photo for ``qr`` (the turned phone's diagonal)."""
    side = qr.shape[0]
    return int(np.hypot(int(side * 1.9), side + 40)) + 4
