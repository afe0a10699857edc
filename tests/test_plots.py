"""The pictures: each writes a PNG that reads back as an image of the size asked for, and a
heatmap whose weights do not fit its labels is refused."""

import matplotlib.image
import numpy as np
import pytest

from rnnkit.plots import attention_heatmap, score_by_length


def test_attention_heatmap(tmp_path):
    path = attention_heatmap(np.eye(3)[::-1], ["a", "b", "c"], ["c", "b", "</s>"], tmp_path / "h.png", title="x")
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    with pytest.raises(ValueError, match=r"weights are \(3, 3\); 2 outputs x 3 source symbols expected"):
        attention_heatmap(np.eye(3), ["a", "b", "c"], ["x", "y"], tmp_path / "bad.png")


def test_score_by_length(tmp_path):
    path = score_by_length({"attention": [(5, 30.0), (15, 28.0)], "none": [(5, 25.0), (15, 12.0)]},
                           tmp_path / "sub" / "l.png")
    assert matplotlib.image.imread(path).shape[:2] == (400, 600)
