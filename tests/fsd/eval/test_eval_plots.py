"""The FROC plot is written as a PNG, whatever the curves look like."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fsd.eval import froc_curve, plot_froc
from fsd.eval.plots import curve_sensitivity_at


def test_plot_of_two_curves_is_a_png(tmp_path):
    lesions = [np.array([[0, 0, 10, 10.0]]), np.array([[20, 20, 30, 30.0]]), np.zeros((0, 4))]
    good = [np.array([[0, 0, 10, 10, 0.9]]), np.array([[20, 20, 30, 30, 0.8]]), np.array([[1, 1, 2, 2, 0.1]])]
    poor = [np.array([[5, 5, 15, 15, 0.9]]), np.array([[20, 20, 30, 30, 0.2]]), np.array([[1, 1, 2, 2, 0.7]])]
    curves = {"good": froc_curve(good, lesions), "poor": froc_curve(poor, lesions)}
    out = plot_froc(curves, tmp_path / "sub" / "froc.png")
    assert out == tmp_path / "sub" / "froc.png"
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.width > 300 and image.height > 200
        # something besides the white background was drawn
        assert len(image.convert("RGB").getcolors(maxcolors=100000)) > 10


def test_plot_accepts_an_empty_curve_and_custom_rates(tmp_path):
    empty = (np.zeros(0), np.zeros(0))
    out = plot_froc({"nothing detected": empty}, tmp_path / "froc.png", fps=(0.05, 1, 32))
    assert out.stat().st_size > 0


def test_markers_read_the_curve_like_the_froc():
    # curve points (0, .5), (.5, .5), (.5, 1): at 0.5 FP/image the last point wins; beyond, held
    fp_per_image = np.array([0.0, 0.5, 0.5])
    sensitivity = np.array([0.5, 0.5, 1.0])
    at_rates = curve_sensitivity_at(fp_per_image, sensitivity, [0.25, 0.5, 4])
    np.testing.assert_array_equal(at_rates, [0.5, 1, 1])
    np.testing.assert_array_equal(curve_sensitivity_at(np.zeros(0), np.zeros(0), [1, 2]), [0, 0])
