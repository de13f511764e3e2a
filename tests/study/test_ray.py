"""The Ray executor on a local Ray instance with the fake run function: results reach the database
through the driver, files come back from the workers."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

import studyfake  # noqa: E402

from losslab.study.runner import run_dir_of, run_study  # noqa: E402
from losslab.study.spec import parse_study  # noqa: E402
from losslab.study.store import StudyStore  # noqa: E402


@pytest.fixture
def local_ray():
    from ray import cloudpickle

    # The workers cannot import the test folder: ship the fake by value.
    cloudpickle.register_pickle_by_value(studyfake)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(studyfake)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_executor_runs_the_study(local_ray, tmp_path, tiny_spec):
    tiny_spec["grid"] = {"variants": {"BCE": {"mask_loss": "bce"}, "Broken": {"mask_loss": "dice", "fake_fail": 1}}}
    out = tmp_path / "study"
    study = parse_study(tiny_spec)
    summary = run_study(study, out, run_fn=studyfake.fake_run, executor="ray", progress=False)
    assert summary == {"total": 4, "skipped": 0, "done": 2, "failed": 2}
    with StudyStore(out / "study.db") as store:
        done = store.runs("done")
        assert {r["label"] for r in done} == {"BCE"}
        assert all(store.metrics(r["run_id"])["segm.AP"] > 0 for r in done)
        assert "fake failure" in store.runs("failed")[0]["error"]
        assert store.integrity_ok()
    for run in done:
        assert (run_dir_of(out, run["run_id"]) / "result.json").is_file()
        assert (run_dir_of(out, run["run_id"]) / "samples" / "1.png").is_file()
    again = run_study(study, out, run_fn=studyfake.fake_run, executor="ray", progress=False, retry_failed=False)
    assert again["skipped"] == 4 and again["done"] == 0
