"""Deployment policies: a policy stops a bad challenger and ramps up, then promotes, a good one, on its own, as the
units it serves and the outcome events posted for them come in. Each decision is taken once (with three replicas
behind nginx in the scale pass, by the one holding the evaluator's lease), recorded in the audit trail by
`plinth:policy` with the traffic before and after and the figures, and shown in the policy API, the CLI and the
experiment page. Bad policies are refused with the reason."""

import subprocess
import uuid

import numpy as np
import pytest
import requests

from conftest import PLINTH_BIN, eventually, register_recommender

API = "/api/2.0/plinth/deployments"


@pytest.fixture(scope="module")
def model(server, tmp_path_factory):
    """A registered recommender with two versions; @champion on version 1."""
    name = register_recommender(server, tmp_path_factory.mktemp("policy"), "pol-recs", ["popularity", "popularity"])
    r = requests.post(f"{server.url}/api/2.0/mlflow/registered-models/alias",
                      json={"name": name, "alias": "champion", "version": "1"}, timeout=30)
    assert r.status_code == 200, r.text
    return name


def create(server, spec):
    return requests.post(f"{server.url}{API}/create", json=spec, timeout=60)


def serve_and_play(server, name, units, minutes):
    """Serves `units` (fresh unit ids) once each and posts, per unit, plays whose minutes `minutes(variant, rng)`
    draws; answers how many units each variant served."""
    rng = np.random.default_rng(len(units))
    session = requests.Session()
    served, events = {}, []
    for unit in units:
        r = session.post(f"{server.url}/v1/deployments/{name}/recommend", json={"user": "user1", "k": 3},
                         headers={"X-Plinth-Unit": unit}, timeout=30)
        assert r.status_code == 200, r.text
        variant = r.json()["variant"]
        served[variant] = served.get(variant, 0) + 1
        for k in range(2):
            events.append({"unit": unit, "kind": "play", "value": float(minutes(variant, rng)),
                           "event_id": f"{unit}-{k}", "deployment": name})
    for at in range(0, len(events), 1000):
        r = session.post(f"{server.url}/v1/events", json={"events": events[at:at + 1000]}, timeout=60)
        assert r.status_code == 200 and not r.json()["rejected"], r.text
    return served


def policy_state(server, name):
    r = requests.get(f"{server.url}{API}/policy", params={"name": name}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def policy_when(server, name, ready, what):
    """The policy state, once `ready(its policy)` holds (the evaluator runs every half second here)."""
    def check():
        state = policy_state(server, name)
        return state if ready(state["policy"]) else None

    return eventually(check, timeout=30, what=what)


def weights(server, name):
    d = requests.get(f"{server.url}{API}/get", params={"name": name}, timeout=30).json()["deployment"]
    return {v["name"]: v["weight"] for v in d["variants"]}


def test_a_good_challenger_is_ramped_up_then_promoted(server, model):
    name = f"pol-good-{uuid.uuid4().hex[:6]}"
    spec = {
        "name": name,
        # Fixed salts: the units' variants are the same in every run.
        "salt": "pol-good",
        "variants": [{"name": "a", "model": f"{model}@champion", "weight": 1},
                     {"name": "b", "model": f"{model}/2", "weight": 1}],
        "metrics": [{"name": "minutes", "event": "play", "aggregate": "sum", "window": "1h"}],
        "policy": {"metric": "minutes", "min_units": 40, "ramp": [20, 50], "promote": "champion",
                   "guardrails": [{"error_rate": 0.05}, {"p95_latency_ms": 5000},
                                  {"metric": "minutes", "max_drop": 0.2}]},
    }
    r = create(server, spec)
    assert r.status_code == 200, r.text
    d = r.json()["deployment"]
    # The policy starts at the ramp's first stage: 20% to the challenger.
    assert {v["name"]: v["weight"] for v in d["variants"]} == {"a": 80, "b": 20}
    assert d["policy"]["state"]["status"] == "running" and d["policy"]["state"]["stage"] == 0
    assert d["metrics"][0] == {"name": "minutes", "event": "play", "aggregate": "sum", "window_ms": 3_600_000,
                               "cuped": False}
    # Nothing served yet: the policy holds, and says why.
    state = policy_state(server, name)
    assert state["evaluation"]["verdict"]["action"] == "hold" and state["decisions"] == []

    better = lambda variant, rng: rng.uniform(20, 40) if variant == "b" else rng.uniform(0, 20)
    served = serve_and_play(server, name, [f"g0-{u}" for u in range(320)], better)
    assert served["b"] >= 40, served

    state = policy_when(server, name, lambda p: p["state"]["stage"] == 1, "the ramp's next stage")
    assert weights(server, name) == {"a": 50, "b": 50}
    [decision] = state["decisions"]
    assert decision["action"] == "policy.advance" and decision["actor"] == "plinth:policy"
    assert "the challenger wins" in decision["detail"] and "20% → 50%" in decision["detail"], decision
    assert decision["before"].endswith("b=" + f"{model}/2:20") and decision["after"].endswith(f"{model}/2:50")

    # The next stage counts the units first exposed since it began.
    serve_and_play(server, name, [f"g1-{u}" for u in range(160)], better)

    state = policy_when(server, name, lambda p: p["state"]["status"] == "promoted", "the promotion")
    # @champion moved to the challenger's version; everyone gets it through the control, which follows it.
    r = requests.get(f"{server.url}/api/2.0/mlflow/registered-models/alias", params={"name": model, "alias": "champion"},
                     timeout=30)
    assert r.json()["model_version"]["version"] == "2", r.text
    assert weights(server, name) == {"a": 50, "b": 0}
    # One decision per stage, newest first, even with several replicas evaluating.
    assert [d["action"] for d in state["decisions"]] == ["policy.promote", "policy.advance"], state["decisions"]
    assert f"{model}@champion → version 2" in state["decisions"][0]["detail"]

    def serving_v2():
        d = requests.get(f"{server.url}{API}/get", params={"name": name}, timeout=30).json()["deployment"]
        return d["variants"][0].get("model_version") == 2

    eventually(serving_v2, timeout=10, what="the control serving the promoted version")
    # The trail has the decisions and the alias move, by plinth:policy.
    trail = requests.get(f"{server.url}/api/2.0/plinth/audit", params={"actor": "plinth:policy", "max_results": 1000},
                         timeout=30).json()["records"]
    mine = [r for r in trail if r["resource"] in (f"deployments/{name}", f"models/{model}/aliases/champion")]
    assert [r["action"] for r in mine] == ["policy.promote", "alias.set", "policy.advance"], mine
    assert mine[1]["before"] == "1" and mine[1]["after"] == "2"
    # Once decided, nothing more happens.
    serve_and_play(server, name, [f"g2-{u}" for u in range(20)], better)
    assert len(policy_state(server, name)["decisions"]) == 2

    # The CLI and the experiment page show the decision log.
    out = subprocess.run([PLINTH_BIN, "deploy", "policy", name, "--tracking-uri", server.url],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    assert "policy: promoted" in out and "promote" in out and "advance" in out, out
    page = requests.get(f"{server.url}/ui/deployments/{name}/experiment", timeout=60)
    assert page.status_code == 200
    assert "Decision log" in page.text and "promoted" in page.text and "20% → 50%" in page.text


def test_a_bad_challenger_is_stopped_by_its_guardrail(server, model):
    name = f"pol-bad-{uuid.uuid4().hex[:6]}"
    spec = {
        "name": name,
        "salt": "pol-bad",
        "variants": [{"name": "a", "model": f"{model}/1", "weight": 1},
                     {"name": "b", "model": f"{model}/2", "weight": 1}],
        "metrics": [{"name": "minutes", "event": "play", "aggregate": "sum", "window": "1h"},
                    {"name": "clicks", "event": "click", "aggregate": "count", "window": "1h"}],
        # The primary metric gets no events (it never decides); minutes must not drop by more than 10%.
        "policy": {"metric": "clicks", "min_units": 1000, "promote": "champion",
                   "guardrails": [{"metric": "minutes", "max_drop": 0.1}]},
    }
    r = create(server, spec)
    assert r.status_code == 200, r.text
    assert weights(server, name) == {"a": 1, "b": 1}, "without a ramp the weights stay as given"
    worse = lambda variant, rng: rng.uniform(0, 10) if variant == "b" else rng.uniform(20, 40)
    serve_and_play(server, name, [f"b0-{u}" for u in range(120)], worse)

    state = policy_when(server, name, lambda p: p["state"]["status"] == "stopped", "the challenger stopped")
    assert weights(server, name) == {"a": 1, "b": 0}
    [decision] = state["decisions"]
    assert decision["action"] == "policy.stop"
    assert "guardrail breached: minutes drops by at most 10" in decision["detail"], decision
    # Nobody is served by the stopped challenger any more; @champion did not move.
    for u in range(30):
        r = requests.post(f"{server.url}/v1/deployments/{name}/recommend", json={"user": "user1", "k": 3},
                          headers={"X-Plinth-Unit": f"b1-{u}"}, timeout=30)
        assert r.json()["variant"] == "a"
    r = requests.get(f"{server.url}/api/2.0/mlflow/registered-models/alias", params={"name": model, "alias": "champion"},
                     timeout=30)
    assert r.json()["model_version"]["version"] in ("1", "2")
    # A named metric analyses by its name.
    r = requests.get(f"{server.url}{API}/analysis", params={"name": name, "metric": "minutes"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["event"] == "play" and r.json()["aggregate"] == "sum"
    # The split is checked over the units first exposed since the weights were set (the stop): not the earlier
    # units the challenger had, which the weights now (b: 0) would call a broken split.
    updated = requests.get(f"{server.url}{API}/get", params={"name": name}, timeout=30).json()["deployment"]

    def checked():
        a = requests.get(f"{server.url}{API}/analysis", params={"name": name, "metric": "minutes"}, timeout=60).json()
        return a if a["srm_units"] == 30 else None

    a = eventually(checked, timeout=10, what="the units since the stop in the split's check")
    assert a["srm_since_ms"] == updated["updated_time"] and a["srm_mismatch"] is False, a
    assert sum(v["units"] for v in a["variants"]) == 150, "the analysis itself keeps every unit"
    r = requests.get(f"{server.url}{API}/analysis", params={"name": name, "metric": "nope"}, timeout=60)
    assert r.status_code == 400 and "its metrics: minutes, clicks" in r.json()["message"], r.text


@pytest.mark.parametrize("change, message", [
    ({"policy": {"metric": "nope"}}, "metric 'nope' is not defined"),
    ({"policy": {"metric": "minutes", "ramp": [50, 10]}}, "ramp must be increasing"),
    ({"policy": {"metric": "minutes", "ramp": "fast"}}, "ramp must be a list"),
    ({"policy": {"metric": "minutes", "challenger": "z"}}, "challenger variant 'z' does not exist"),
    ({"policy": {"metric": "minutes", "guardrails": [{"error_rate": 2}]}}, "error_rate must be in [0, 1)"),
    ({"policy": {"metric": "minutes", "guardrails": [{"latency": 2}]}}, "a guardrail is"),
    ({"policy": {"metric": "minutes", "alpha": 0}}, "alpha must be between 0 and 1"),
    ({"policy": {"metric": "minutes", "min_duration": "soon"}}, "min_duration must be a duration"),
    ({"policy": {"metric": "minutes", "promote": "latest"}}, "latest"),
    ({"metrics": [{"name": "minutes", "event": "play", "window": "0s"}]}, "window > 0"),
    ({"metrics": [{"name": "minutes", "event": "play"}, {"name": "minutes", "event": "x"}]}, "Duplicate metric"),
    ({"mode": "interleave", "policy": {"metric": "minutes"}}, "needs a split deployment"),
    ({"variants": [{"name": "a", "model": "m/1"}], "policy": {"metric": "minutes"}}, "exactly two variants"),
])
def test_bad_policies_are_refused_with_the_reason(server, model, change, message):
    spec = {"name": f"pol-x-{uuid.uuid4().hex[:6]}",
            "variants": [{"name": "a", "model": f"{model}/1"}, {"name": "b", "model": f"{model}/2"}],
            "metrics": [{"name": "minutes", "event": "play", "aggregate": "sum", "window": "1h"}]}
    r = create(server, {**spec, **change})
    assert r.status_code == 400 and message in r.json()["message"], r.text
