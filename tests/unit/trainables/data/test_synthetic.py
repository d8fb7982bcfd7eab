"""Synthetic faces: shapes, determinism, chunking and label sanity."""

import numpy as np
import pytest

from hmtl.trainables.data.synthetic import EXPRESSIONS, SyntheticFaces, render_faces

FIELDS = ("images", "expression", "yaw", "pitch", "roll", "gender", "identity")


def assert_same(a: SyntheticFaces, b: SyntheticFaces) -> None:
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize(
    ("size", "channels", "n"),
    [(48, 1, 16), (48, 3, 16), (64, 1, 8), (112, 3, 4), (224, 1, 2), (224, 3, 2)],
)
def test_shapes_and_dtypes(size: int, channels: int, n: int) -> None:
    faces = render_faces(n, size=size, channels=channels)
    assert faces.images.shape == (n, size, size, channels)
    assert faces.images.dtype == np.uint8
    for name, dtype in [
        ("expression", np.int64),
        ("yaw", np.float32),
        ("pitch", np.float32),
        ("roll", np.float32),
        ("gender", np.int64),
        ("identity", np.int64),
    ]:
        value = getattr(faces, name)
        assert value.shape == (n,) and value.dtype == dtype, name


def test_empty_set() -> None:
    faces = render_faces(0, size=48)
    assert faces.images.shape == (0, 48, 48, 1) and faces.expression.shape == (0,)


def test_same_seed_same_bytes_other_seed_differs() -> None:
    assert_same(render_faces(32, size=48, seed=3), render_faces(32, size=48, seed=3))
    other = render_faces(32, size=48, seed=4)
    assert not np.array_equal(render_faces(32, size=48, seed=3).images, other.images)


@pytest.mark.parametrize(
    ("size", "splits"), [(48, [(0, 5), (5, 40), (45, 19)]), (224, [(0, 7), (7, 17)])]
)  # 224: several batches
def test_chunks_concatenate_to_one_call(size: int, splits: list[tuple[int, int]]) -> None:
    whole = render_faces(sum(m for _, m in splits), size=size, seed=1)
    parts = [render_faces(m, size=size, seed=1, start=s) for s, m in splits]
    joined = SyntheticFaces(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))
    assert_same(whole, joined)


def test_labels_cover_classes_and_ranges() -> None:
    faces = render_faces(256, size=48, num_identities=20)
    assert len(EXPRESSIONS) == 8
    assert set(faces.expression.tolist()) == set(range(8))
    assert np.all(np.abs(faces.yaw) <= 40) and np.all(np.abs(faces.pitch) <= 25)
    assert np.all(np.abs(faces.roll) <= 25)
    assert faces.yaw.std() > 10 and faces.roll.std() > 5
    assert set(faces.gender.tolist()) == {0, 1}
    assert faces.identity.min() >= 0 and faces.identity.max() < 20


def test_gender_is_a_property_of_identity() -> None:
    faces = render_faces(256, size=48, num_identities=20)
    for ident in np.unique(faces.identity):
        assert len(set(faces.gender[faces.identity == ident].tolist())) == 1


def test_labels_do_not_depend_on_image_shape() -> None:
    small, large = render_faces(16, size=48), render_faces(16, size=96, channels=3)
    for name in FIELDS[1:]:
        np.testing.assert_array_equal(getattr(small, name), getattr(large, name), err_msg=name)


def test_images_vary() -> None:
    images = render_faces(16, size=48, channels=3).images.astype(np.float32)
    assert images.reshape(16, -1).std(axis=1).min() > 5
    assert np.abs(images[0] - images[1]).mean() > 5


def test_bad_arguments_rejected() -> None:
    with pytest.raises(ValueError):
        render_faces(4, size=32)
    with pytest.raises(ValueError):
        render_faces(4, channels=2)
