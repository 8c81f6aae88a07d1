import numpy as np
import pytest

from radscribe.report.overlay import Box2D, render_overlay, save_png


def test_box_contour_and_heatmap_are_drawn_where_asked(tmp_path):
    gray = np.full((64, 64), 100, np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[10:30, 10:30] = True
    hm = np.zeros((16, 16), np.float32)
    hm[12:16, 12:16] = 1.0  # bottom-right corner, upsampled to the slice
    img = render_overlay(gray, [Box2D(40, 40, 50, 50, "1 nodule", (255, 0, 0))], [(mask, (0, 255, 0))],
                         heatmap=hm, min_side=64)
    a = np.asarray(img)
    assert a.shape == (64, 64, 3)
    assert (a[10, 15] == (0, 255, 0)).all()          # contour edge
    assert (a[20, 20] == 100).all()                   # inside the contour, untouched
    assert tuple(a[37, 45]) == (255, 0, 0)            # box top edge (padded by 3 px)
    assert a[60, 60, 0] > a[60, 60, 2]                # hot end of the colour map
    save_png(img, tmp_path / "o" / "x.png")
    assert (tmp_path / "o" / "x.png").stat().st_size > 0


def test_anisotropic_pixels_are_stretched_and_non_uint8_refused():
    img = render_overlay(np.zeros((100, 200), np.uint8), min_side=200, aspect=2.0)
    assert img.size == (200, 200)
    with pytest.raises(ValueError):
        render_overlay(np.zeros((4, 4), np.float32))
