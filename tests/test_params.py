import pytest

from hrpred.params import ParamError, load_params


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_float_accepts_what_dvc_exp_run_writes(tmp_path):
    # `dvc exp run -S train.lr=1e-5` writes `1e-05`, which PyYAML loads as a string.
    p = load_params("train", write(tmp_path, "train:\n  lr: 1e-05\n  wd: 0.5\n  n: 3\n"))
    assert p.float("lr") == pytest.approx(1e-5)
    assert p.float("wd") == 0.5
    assert p.float("n") == 3.0


def test_int_rejects_fraction_and_bool(tmp_path):
    p = load_params("t", write(tmp_path, "t:\n  a: 2.0\n  b: 2.5\n  c: true\n  d: '7'\n"))
    assert p.int("a") == 2
    assert p.int("d") == 7
    with pytest.raises(ParamError, match="t.b must be an integer"):
        p.int("b")
    with pytest.raises(ParamError, match="t.c must be an integer"):
        p.int("c")


def test_missing_key_names_it(tmp_path):
    p = load_params("t", write(tmp_path, "t:\n  a: 1\n"))
    with pytest.raises(ParamError, match="missing key 't.zz'"):
        p.float("zz")
    assert p.float("zz", 2.5) == 2.5


def test_bool_and_lists(tmp_path):
    p = load_params("t", write(tmp_path, "t:\n  flag: 'true'\n  f: [0.7, '0.15', 0.15]\n  x: 3\n"))
    assert p.bool("flag") is True
    assert p.floats("f") == [0.7, 0.15, 0.15]
    with pytest.raises(ParamError, match="must be true or false"):
        p.bool("x")
    with pytest.raises(ParamError, match="must be a list"):
        p.list("x")


def test_missing_file(tmp_path):
    with pytest.raises(ParamError, match="not found"):
        load_params("t", tmp_path / "nope.yaml")


def test_repo_params_are_typed():
    # The committed params.yaml reads through the typed getters.
    train = load_params("train")
    assert train.float("lr") > 0
    assert train.int("patience") > train.int("lr_patience")
    assert load_params("split").str("method") in ("user", "chronological")
