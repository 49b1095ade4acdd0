"""Online experiments: outcome events posted to `/v1/events` and the analysis of a deployment
(`/api/2.0/plinth/deployments/analysis`), compared on the same data with the reference implementations:
`tea-tasting` (means, Welch intervals, relative lift by the delta method, CUPED, ratio metrics), GrowthBook's
`gbstats` (the absolute lift's interval and p-value), scipy (the sample-ratio check) and statsmodels (Holm's
correction). Units are served by a real deployment (their variants and first exposures come from its exposure
log); the events are simulated per unit, with a known effect in one variant and a pre-exposure covariate."""

import subprocess
import uuid

import numpy as np
import pandas as pd
import pytest
import requests
import scipy.stats
import tea_tasting as tt
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import SampleMeanStatistic
from statsmodels.stats.multitest import multipletests

from conftest import PLINTH_BIN, eventually, register_recommender

WINDOW_MS = 3_600_000
UNITS = 900


def close(a, b, tol=1e-6):
    return a == pytest.approx(b, rel=tol, abs=tol)


@pytest.fixture(scope="module")
def experiment(server, tmp_path_factory):
    """A three-variant deployment (weights 2:1:1) that served UNITS units, some twice; per unit its variant,
    first exposure, exposures in the window, and the simulated events (posted) with what each should count."""
    model = register_recommender(server, tmp_path_factory.mktemp("exp"), "exp-recs")
    name = f"exp-{uuid.uuid4().hex[:6]}"
    # A fixed salt: the units' variants, and so the simulated data, are the same in every run (with the name's
    # random salt, one run in a few dozen drew data where the +0.6 effect fell short of significance).
    spec = {"name": name, "salt": "exp-20261207", "variants": [{"name": "a", "model": f"{model}/1", "weight": 2},
                                       {"name": "b", "model": f"{model}/1", "weight": 1},
                                       {"name": "c", "model": f"{model}/1", "weight": 1}]}
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create", json=spec, timeout=60)
    assert r.status_code == 200, r.text
    session = requests.Session()
    shown = {}
    for u in range(UNITS):
        for _ in range(1 + (u % 4 == 0)):
            r = session.post(f"{server.url}/v1/deployments/{name}/recommend", json={"user": f"user{u % 60}", "k": 3},
                             headers={"X-Plinth-Unit": f"unit{u}"}, timeout=30)
            assert r.status_code == 200, r.text
            shown[f"unit{u}"] = [i["item"] for i in r.json()["items"]]
    # A caller's mistake is no exposure.
    r = session.post(f"{server.url}/v1/deployments/{name}/recommend", json={"user": "user1", "k": 0},
                     headers={"X-Plinth-Unit": "unit-bad"}, timeout=30)
    assert r.status_code == 400, r.text
    def logged():
        found = requests.get(f"{server.url}/api/2.0/plinth/deployments/exposures",
                             params={"name": name, "max_results": 100000}, timeout=60).json()["exposures"]
        return found if len(found) == UNITS + UNITS // 4 else None

    # Every exposure is logged, and read back through any replica (each writes its own within a second).
    found = eventually(logged, timeout=10, what="every exposure in the log")
    # Each exposure keeps what was shown, in rank order, and that it did not fail.
    for e in found:
        assert e["items"] == shown[e["unit"]] and e["error"] is False, e
    exposures = pd.DataFrame(found)
    first = exposures.sort_values("time_ms").groupby("unit").first()
    units = pd.DataFrame({"variant": first["variant"], "first_ms": first["time_ms"],
                          "n": exposures.groupby("unit").size()})
    assert set(units["variant"]) == {"a", "b", "c"}

    rng = np.random.default_rng(20261207)
    effect = {"a": 0.0, "b": 0.6, "c": 0.1}
    events, y, x, minutes = [], [], [], []
    for unit, row in units.iterrows():
        pre = int(rng.poisson(2.0))
        post = int(rng.poisson(1.5 + 0.5 * pre + effect[row.variant]))
        total = 0.0
        for k in range(pre):  # before the first exposure, within one window of it: the covariate
            events.append({"unit": unit, "kind": "play", "time": int(row.first_ms) - 1000 * (k + 1), "value": 3.0})
        for k in range(post):
            value = float(np.round(rng.uniform(1, 60), 3))
            total += value
            events.append({"unit": unit, "kind": "play", "time": int(row.first_ms) + 500 * k, "value": value,
                           "event_id": f"{unit}-{k}", "deployment": name if k % 2 else None})
        # Not counted: another kind, and a play after the window.
        events.append({"unit": unit, "kind": "click", "time": int(row.first_ms) + 10})
        events.append({"unit": unit, "kind": "play", "time": int(row.first_ms) - 2 * WINDOW_MS, "value": 100.0})
        y.append(post), x.append(pre), minutes.append(total)
    units["y"], units["x"], units["minutes"] = y, x, minutes
    units["converted"] = (units["y"] > 0).astype(float)
    units["x_converted"] = (units["x"] > 0).astype(float)
    for at in range(0, len(events), 1000):
        batch = [{k: v for k, v in e.items() if v is not None} for e in events[at:at + 1000]]
        r = requests.post(f"{server.url}/v1/events", json={"events": batch}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted": len(batch), "rejected": []}
    # A retried batch (the same event ids) counts once.
    retried = [e for e in events if e.get("event_id")][:300]
    r = requests.post(f"{server.url}/v1/events", json=[{k: v for k, v in e.items() if v is not None}
                                                       for e in retried], timeout=60)
    assert r.status_code == 200 and r.json()["accepted"] == len(retried), r.text
    return {"name": name, "units": units}


def analysis(server, name, **params):
    r = requests.get(f"{server.url}/api/2.0/plinth/deployments/analysis",
                     params={"name": name, "event": "play", "window": "1h"} | params, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def variant(result, name):
    return next(v for v in result["variants"] if v["name"] == name)


def assert_like_tea_tasting(result, units, metric, column):
    """Each treatment's lift against `a` equals tea-tasting's analysis of the same per-unit data."""
    for treatment in ["b", "c"]:
        pair = units[units["variant"].isin(["a", treatment])]
        ref = tt.Experiment(m=metric, variant="variant").analyze(pair, control="a")["m"]
        lift = variant(result, treatment)["lift"]
        assert close(lift["control_mean"], ref.control) and close(lift["treatment_mean"], ref.treatment), (lift, ref)
        assert close(lift["absolute"], ref.effect_size)
        assert close(lift["absolute_ci_low"], ref.effect_size_ci_lower)
        assert close(lift["absolute_ci_high"], ref.effect_size_ci_upper)
        assert close(lift["relative"], ref.rel_effect_size)
        assert close(lift["relative_ci_low"], ref.rel_effect_size_ci_lower)
        assert close(lift["relative_ci_high"], ref.rel_effect_size_ci_upper)
        assert close(lift["p_value"], ref.pvalue), (lift, ref)
    for name in ["a", "b", "c"]:
        v = variant(result, name)
        values = units.loc[units["variant"] == name, column]
        assert v["units"] == len(values)


def test_counts_match_tea_tasting_gbstats_scipy_and_statsmodels(server, experiment):
    units, name = experiment["units"], experiment["name"]
    result = analysis(server, name, aggregate="count")
    assert result["control"] == "a" and result["mode"] == "fixed"
    assert_like_tea_tasting(result, units, tt.Mean("y"), "y")
    for name_ in ["a", "b", "c"]:
        v, values = variant(result, name_), units.loc[units["variant"] == name_, "y"]
        assert close(v["mean"], values.mean())
        half = scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
        assert close(v["ci_low"], values.mean() - half) and close(v["ci_high"], values.mean() + half)
        assert v["exposures"] == int(units.loc[units["variant"] == name_, "n"].sum())
        assert v["p95_latency_ms"] is not None and v["p95_latency_ms"] > 0
        assert v["error_rate"] == 0.0
    # GrowthBook's frequentist engine: the absolute lift, its interval and p-value.
    stat = {g: SampleMeanStatistic(n=len(s), sum=float(s.sum()), sum_squares=float((s ** 2).sum()))
            for g, s in units.groupby("variant")["y"]}
    gb = TwoSidedTTest(stat["a"], stat["b"], FrequentistConfig(difference_type="absolute")).compute_result()
    lift = variant(result, "b")["lift"]
    assert close(lift["absolute"], gb.expected) and close(lift["p_value"], gb.p_value)
    assert close(lift["absolute_ci_low"], gb.ci[0]) and close(lift["absolute_ci_high"], gb.ci[1])
    # The split against the weights 2:1:1 (scipy), and Holm over the two treatments (statsmodels).
    counts = [variant(result, g)["units"] for g in ["a", "b", "c"]]
    expected = [sum(counts) * w / 4 for w in [2, 1, 1]]
    assert close(result["srm_p_value"], scipy.stats.chisquare(counts, expected).pvalue)
    assert result["srm_mismatch"] is False
    raw = [variant(result, g)["lift"]["p_value"] for g in ["b", "c"]]
    adjusted = multipletests(raw, method="holm")[1]
    for g, want in zip(["b", "c"], adjusted):
        assert close(variant(result, g)["lift"]["p_value_adjusted"], want)
    assert variant(result, "b")["lift"]["significant"] is True, "a known effect of +0.6 plays is found"
    assert variant(result, "a")["lift"] is None


def test_cuped_sum_conversion_and_ratio_metrics_match_tea_tasting(server, experiment):
    units, name = experiment["units"], experiment["name"]
    cuped = analysis(server, name, aggregate="count", cuped="true")
    assert_like_tea_tasting(cuped, units, tt.Mean("y", covariate="x"), "y")
    plain = analysis(server, name, aggregate="count")
    width = lambda r: r["absolute_ci_high"] - r["absolute_ci_low"]  # noqa: E731
    assert width(variant(cuped, "b")["lift"]) < width(variant(plain, "b")["lift"]), "CUPED narrows the interval"
    assert_like_tea_tasting(analysis(server, name, aggregate="sum"), units, tt.Mean("minutes"), "minutes")
    assert_like_tea_tasting(analysis(server, name, aggregate="conversion", cuped="true"), units,
                            tt.Mean("converted", covariate="x_converted"), "converted")
    # Events per exposure: a ratio metric, by the delta method.
    assert_like_tea_tasting(analysis(server, name, aggregate="ratio"), units, tt.RatioOfMeans("y", "n"), "y")


def test_anytime_valid_intervals_are_wider_and_hold_the_estimate(server, experiment):
    name = experiment["name"]
    fixed = analysis(server, name)
    sequential = analysis(server, name, mode="sequential", planned_units="2000")
    assert sequential["mode"] == "sequential" and sequential["planned_units"] == 2000
    for g in ["b", "c"]:
        f, s = variant(fixed, g)["lift"], variant(sequential, g)["lift"]
        assert s["absolute"] == pytest.approx(f["absolute"])
        assert s["absolute_ci_low"] < f["absolute_ci_low"] < f["absolute"] < f["absolute_ci_high"] < s["absolute_ci_high"]
        assert s["relative_ci_low"] < f["relative_ci_low"] and s["relative_ci_high"] > f["relative_ci_high"]
        assert 0 <= s["p_value"] <= 1 and s["p_value"] >= f["p_value"]
    for v in sequential["variants"]:
        w = variant(fixed, v["name"])
        assert v["ci_low"] < w["ci_low"] and v["ci_high"] > w["ci_high"]


def test_bad_events_are_refused_one_by_one(server, experiment):
    name = experiment["name"]
    batch = [
        {"unit": "u1", "kind": "play"},
        {"kind": "play"},
        {"unit": "u1", "kind": "no spaces"},
        {"unit": "u1", "kind": "play", "time": 4102444800000},
        {"unit": "u1", "kind": "play", "value": "ten"},
        {"unit": "u1", "kind": "play", "deployment": "no-such-deployment"},
        {"unit": "u1", "kind": "play", "colour": "red"},
        "play",
        {"unit": 42, "kind": "play", "deployment": name, "item": 7, "value": 1.5},
    ]
    r = requests.post(f"{server.url}/v1/events", json=batch, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2
    reasons = {x["index"]: x["reason"] for x in body["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7], body
    for index, words in {1: "'unit' is required", 2: "'kind' must", 3: "in the future", 4: "'value' must be a number",
                         5: "deployment 'no-such-deployment' does not exist", 6: "unknown field 'colour'",
                         7: "must be a JSON object"}.items():
        assert words in reasons[index], (index, reasons[index])
    r = requests.post(f"{server.url}/v1/events", json=[{"kind": "play"}], timeout=30)
    assert r.status_code == 400 and r.json()["accepted"] == 0, "a batch with nothing accepted is a 400"
    for body in ['{"events": 3}', "not json", '{"unit": "u1", "kind": "play"}']:
        r = requests.post(f"{server.url}/v1/events", data=body, headers={"Content-Type": "application/json"},
                          timeout=30)
        assert r.status_code == 400 and "error" in r.json(), body
    # A state change: a text body (what a cross-site page sends without a preflight) and a foreign Origin are refused.
    r = requests.post(f"{server.url}/v1/events", data='[{"unit": "u1", "kind": "play"}]',
                      headers={"Content-Type": "text/plain"}, timeout=30)
    assert r.status_code == 400 and "application/json" in r.json()["error"], r.text
    r = requests.post(f"{server.url}/v1/events", json=[{"unit": "u1", "kind": "play"}],
                      headers={"Origin": "https://evil.example"}, timeout=30)
    assert r.status_code == 403, r.text
    r = requests.post(f"{server.url}/v1/events", json=[{"unit": "u", "kind": "play"}] * 10_001, timeout=60)
    assert r.status_code == 400 and "at most 10000" in r.json()["error"]


def test_bad_analyses_are_refused_with_the_reason(server, experiment, tmp_path):
    name = experiment["name"]
    url = f"{server.url}/api/2.0/plinth/deployments/analysis"
    cases = [
        ({"name": "no-such-deployment", "event": "play"}, 404, "no-such-deployment"),
        ({"name": name, "event": "play", "control": "z"}, 400, "control variant 'z' does not exist"),
        ({"name": name, "event": "play", "window": "0"}, 400, "window"),
        ({"name": name, "event": "play", "window": "-5"}, 400, "window"),
        ({"name": name, "event": "play", "window": "soon"}, 400, "window"),
        ({"name": name, "event": "play", "aggregate": "median"}, 400, "aggregate must be one of"),
        ({"name": name, "event": "bad kind"}, 400, "event must be an event kind"),
        ({"name": name, "event": "play", "mode": "bayesian"}, 400, "mode must be fixed or sequential"),
        ({"name": name, "event": "play", "alpha": "1.5"}, 400, "alpha"),
        ({"name": name, "event": "play", "since_ms": "4102444800000"}, 400, "since_ms is in the future"),
        ({"name": name, "metric": "watch-time"}, 400, "no metric named 'watch-time'"),
        ({"name": name}, 400, "event"),
    ]
    for params, status, words in cases:
        r = requests.get(url, params=params, timeout=60)
        assert r.status_code == status, (params, r.text)
        body = r.json()
        assert body["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST") and words in body["message"], (params, body)
    # A variant nobody was exposed to yet: nothing to analyse, said so.
    empty = f"exp-empty-{uuid.uuid4().hex[:6]}"
    model = requests.get(f"{server.url}/api/2.0/plinth/deployments/get", params={"name": name},
                         timeout=30).json()["deployment"]["variants"][0]["model"]
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create",
                      json={"name": empty, "variants": [{"name": "x", "model": model}, {"name": "y", "model": model}]},
                      timeout=60)
    assert r.status_code == 200, r.text
    r = requests.get(url, params={"name": empty, "event": "play"}, timeout=60)
    assert r.status_code == 400 and "variant 'x' has no exposed units" in r.json()["message"], r.text


def test_the_cli_prints_the_analysis(server, experiment):
    name = experiment["name"]
    out = subprocess.run([PLINTH_BIN, "deploy", "analyze", name, "--event", "play", "--window", "1h", "--cuped",
                          "--tracking-uri", server.url], check=True, capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("count of 'play' per unit, 1h window, fixed intervals at 95%, CUPED"), out.stdout
    assert lines[1].split()[:3] == ["VARIANT", "UNITS", "MEAN"]
    assert any(line.startswith("a (control)") for line in lines) and any(line.startswith("b ") for line in lines)
    assert "sample ratio: p = " in out.stdout and "(ok)" in out.stdout
    as_json = subprocess.run([PLINTH_BIN, "deploy", "analyze", name, "--event", "play", "--window", "1h", "--json",
                              "--mode", "sequential", "--tracking-uri", server.url],
                             check=True, capture_output=True, text=True, timeout=120)
    import json

    assert json.loads(as_json.stdout)["mode"] == "sequential"
    bad = subprocess.run([PLINTH_BIN, "deploy", "analyze", name, "--event", "play", "--control", "zz",
                          "--tracking-uri", server.url], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "control variant 'zz' does not exist" in bad.stderr


def test_events_import_from_a_file(server, experiment, tmp_path):
    """`plinth events import` sends a CSV's rows to /v1/events; a refused row is reported with its number and
    fails the command; the imported events count in the analysis."""
    units, name = experiment["units"], experiment["name"]
    signed = units.iloc[::3]
    lines = ["unit,kind,time,value"] + [f"{u},signup,{int(row.first_ms) + 1000},1" for u, row in signed.iterrows()]
    lines.insert(5, "unit7,sign up,,")  # row 5: a kind with a space
    csv = tmp_path / "signups.csv"
    csv.write_text("\n".join(lines) + "\n")
    out = subprocess.run([PLINTH_BIN, "events", "import", str(csv), "--deployment", name, "--batch", "100",
                          "--tracking-uri", server.url], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0, out.stdout
    assert f"{len(signed)} events accepted, 1 refused" in out.stdout, out.stdout + out.stderr
    assert "row 5: 'kind' must" in out.stderr, out.stderr
    result = analysis(server, name, aggregate="conversion")  # event=play: unchanged by the import
    assert variant(result, "a")["units"] == int((units["variant"] == "a").sum())
    signups = analysis(server, name, aggregate="conversion", event="signup")
    for g in ["a", "b", "c"]:
        want = units.loc[units["variant"] == g].index.isin(signed.index).mean()
        assert close(variant(signups, g)["mean"], want)
    missing = tmp_path / "bad.csv"
    missing.write_text("who,kind\nu1,play\n")
    out = subprocess.run([PLINTH_BIN, "events", "import", str(missing), "--tracking-uri", server.url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "unknown columns who" in out.stderr, out.stderr


def test_unscoped_events_count_only_in_their_workspace(server, experiment):
    """Events that name no deployment belong to the workspace they were posted in: another team's events for the
    same unit ids do not enter this deployment's analysis; a workspace that does not exist is refused."""
    units, name = experiment["units"], experiment["name"]
    before = analysis(server, name, aggregate="count")
    other = f"exp-team-{uuid.uuid4().hex[:6]}"
    r = requests.post(f"{server.url}/api/3.0/mlflow/workspaces", json={"name": other}, timeout=30)
    assert r.status_code == 201, r.text
    batch = [{"unit": u, "kind": "play", "time": int(row.first_ms) + 10} for u, row in units.iterrows()]
    r = requests.post(f"{server.url}/v1/events", json=batch, headers={"X-MLFLOW-WORKSPACE": other}, timeout=60)
    assert r.status_code == 200 and r.json()["accepted"] == len(batch), r.text
    after = analysis(server, name, aggregate="count")
    for g in ["a", "b", "c"]:
        assert close(variant(after, g)["mean"], variant(before, g)["mean"], 1e-12), "another workspace's do not count"
    r = requests.post(f"{server.url}/v1/events", json=batch[:1], headers={"X-MLFLOW-WORKSPACE": "no-such-team"},
                      timeout=30)
    assert r.status_code == 404 and "error" in r.json(), r.text
    # The same events posted in the deployment's own workspace do count.
    r = requests.post(f"{server.url}/v1/events", json=batch, timeout=60)
    assert r.status_code == 200, r.text
    counted = analysis(server, name, aggregate="count")
    assert variant(counted, "a")["mean"] == pytest.approx(variant(before, "a")["mean"] + 1)
