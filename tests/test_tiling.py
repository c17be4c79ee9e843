import numpy as np
import pytest

from napari_deblur.engine.tiling import balanced_tile, ramp_window, tile_apply_iter, tile_starts


@pytest.mark.parametrize("length, tile, overlap", [(100, 100, 16), (256, 128, 32), (260, 128, 32), (1000, 256, 64)])
def test_tiles_cover_with_overlap_on_a_grid_of_four(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + size] = True
        assert s % 4 == 0
    assert covered.all()
    assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))


def test_ramps_skip_the_tile_border_and_blend_neighbours_to_one():
    w = ramp_window(64, 128, 512, 32)  # neighbours on both sides
    assert w.max() == 1
    assert np.all(w[:8] == 0) and np.all(w[-8:] == 0)  # the outer quarter of the overlap is not used
    assert np.all(np.diff(w[8:24]) > 0) and np.all(np.diff(w[-24:-8]) < 0)
    left, right = ramp_window(0, 128, 512, 32), ramp_window(96, 128, 512, 32)  # overlapping by 32
    np.testing.assert_allclose(left[96:] + right[:32], 1, atol=1e-6)  # a partition of unity
    assert left[0] == 1  # no fade towards the image's own edge


def test_identity_function_is_reproduced_exactly():
    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 200, 136), dtype=np.float32)
    gen = tile_apply_iter(lambda b: (b, 2 * b), x, tile=64, overlap=16, batch=5)
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            out_a, out_b = stop.value
            break
    np.testing.assert_allclose(out_a, x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out_b, 2 * x, rtol=1e-6, atol=1e-6)
    total = steps[-1][1]
    assert steps[-1][0] == total == 3 * len(tile_starts(200, 64, 16)) * len(tile_starts(136, 64, 16))
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)


def test_batches_never_exceed_the_batch_size():
    seen = []

    def fn(b):
        seen.append(b.shape)
        return (b,)

    list(tile_apply_iter(fn, np.zeros((4, 1, 64, 64), np.float32), tile=32, overlap=8, batch=3))
    assert all(s[0] <= 3 for s in seen)
    assert {s[2:] for s in seen} == {(28, 28)}  # three tiles of 28 cover 64 as three of 32 would


@pytest.mark.parametrize(
    ("length", "tile", "overlap"), [(2048, 1024, 96), (1000, 256, 32), (300, 128, 0), (96, 64, 16)]
)
def test_balanced_tiles_cover_with_the_same_count_and_at_least_the_overlap(length, tile, overlap):
    side = balanced_tile(length, tile, overlap)
    assert side % 4 == 0 and side <= tile
    starts, widest = tile_starts(length, side, overlap), tile_starts(length, tile, overlap)
    assert len(starts) == len(widest)  # no more network passes than tiles of the full size
    assert starts[-1] + side == length and all(b - a <= side - overlap for a, b in zip(starts, starts[1:]))
    assert len(starts) * side < len(widest) * tile or side == tile  # fewer pixels computed


def test_a_2048_side_in_tiles_of_1024_computes_a_quarter_more_not_double():
    side = balanced_tile(2048, 1024, 96)
    assert side == 748 and (3 * side / 2048) ** 2 < 1.21 < (3 * 1024 / 2048) ** 2
    assert balanced_tile(500, 1024, 96) == 500
