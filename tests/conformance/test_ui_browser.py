"""The web UI in a real browser: Debian's Chromium, headless, driven by
Playwright, over data logged with the real `mlflow` client. Each main page is
saved as a screenshot under $PLINTH_UI_SCREENSHOTS (default: a folder in the
system temp dir) for a person to look at."""

import os
import shutil
import tempfile
import uuid

import mlflow
import pytest
from playwright.sync_api import expect, sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = os.environ.get("PLINTH_UI_SCREENSHOTS", os.path.join(tempfile.gettempdir(), "plinth-ui-screenshots"))
XSS = "<script>window.__xss = 1</script>"


@pytest.fixture(scope="module")
def seeded(server):
    name = f"ui-{uuid.uuid4().hex[:6]}"
    experiment_id = mlflow.set_experiment(name).experiment_id
    runs = {}
    for run_name, algo, factors, best in [("als-small", "als", 32, 0.21), ("als-large", "als", 128, 0.34),
                                          ("bpr", "bpr", 64, 0.18), (f"x{XSS}", "pop", 0, 0.05)]:
        with mlflow.start_run(run_name=run_name) as run:
            mlflow.log_params({"algo": algo, "factors": factors})
            for step in range(10):
                mlflow.log_metric("ndcg_at_10", best * (step + 1) / 10, step=step)
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.set_tag("note", XSS)
            mlflow.log_text(f"hello {XSS}", "notes.txt")
            mlflow.log_dict({"factors": factors}, "config.json")
        runs[run_name] = run.info.run_id
    model = f"recs-{uuid.uuid4().hex[:6]}"
    client = mlflow.MlflowClient()
    client.create_registered_model(model)
    for run_name in ("als-small", "als-large"):
        run_id = runs[run_name]
        client.create_model_version(model, f"runs:/{run_id}/notes.txt", run_id=run_id)
    return name, experiment_id, runs, model


@pytest.fixture(scope="module")
def page():
    assert CHROMIUM, "Chromium is missing: scripts/test.sh installs Debian's 'chromium' package"
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, timeout=60_000,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)
    assert page.evaluate("window.__xss") is None, "a user string ran as script"


def test_open_an_experiment_filter_and_sort_its_runs(server, seeded, page):
    name, _, _, _ = seeded
    page.goto(server.url + "/")
    expect(page).to_have_title("Experiments · Plinth")
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.locator("#runs tbody tr")).to_have_count(4)
    page.locator("#filter").fill("params.algo = 'als'")
    page.locator("#filter").press("Enter")
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    # Sort by the metric column, best first.
    page.locator("#runs thead a", has_text="ndcg_at_10").click()
    expect(page.locator("#runs tbody tr").first).to_contain_text("als-large")
    page.locator("#runs thead a", has_text="ndcg_at_10").click()
    expect(page.locator("#runs tbody tr").first).to_contain_text("als-small")
    shot(page, "runs")


def test_a_broken_filter_shows_the_parsers_message(server, seeded, page):
    _, experiment_id, _, _ = seeded
    page.goto(f"{server.url}/ui/experiments/{experiment_id}")
    page.locator("#filter").fill("metrics.ndcg_at_10 >>> 1")
    page.locator("#filter").press("Enter")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("#runs")).to_be_visible()
    shot(page, "runs-bad-filter")


def test_a_run_shows_its_charts_and_artifacts(server, seeded, page):
    _, experiment_id, runs, _ = seeded
    page.goto(f"{server.url}/ui/experiments/{experiment_id}")
    page.get_by_role("link", name="als-large", exact=True).click()
    expect(page.locator("h1")).to_have_text("als-large")
    expect(page.locator("svg.chart")).to_have_count(2)
    expect(page.locator("svg.chart polyline").first).to_be_visible()
    expect(page.get_by_text("factors", exact=True).first).to_be_visible()
    shot(page, "run")
    page.get_by_role("link", name="notes.txt").first.click()
    expect(page.locator("pre")).to_have_text(f"hello {XSS}")
    shot(page, "artifact-text")
    page.goto(f"{server.url}/ui/runs/{runs[f'x{XSS}']}")
    expect(page.locator("h1")).to_have_text(f"x{XSS}")
    shot(page, "run-with-markup-in-its-name")


def test_compare_selected_runs(server, seeded, page):
    _, experiment_id, _, _ = seeded
    page.goto(f"{server.url}/ui/experiments/{experiment_id}")
    for run_name in ("als-small", "als-large", "bpr"):
        page.get_by_role("checkbox", name=f"select {run_name}").check()
    page.get_by_role("button", name="Compare selected").click()
    expect(page.locator("h1")).to_have_text("Comparing 3 runs")
    expect(page.locator("#compare td.changed").first).to_be_visible()
    expect(page.locator("svg.chart").first).to_be_visible()
    assert page.locator("svg.chart").count() >= 3, "two histories and the scatter"
    shot(page, "compare")


def test_move_an_alias_with_a_confirmation(server, seeded, page):
    _, _, _, model = seeded
    page.goto(f"{server.url}/ui/models")
    page.get_by_role("link", name=model).click()
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    page.locator("input[name=alias]").fill("champion")
    page.locator("select[name=version]").select_option("2")
    page.get_by_role("button", name="Set alias…").click()
    expect(page.locator("#change")).to_have_text(f"Set @champion of {model} to version 2?")
    shot(page, "alias-confirm")
    page.locator("#confirm").click()
    expect(page.locator("#versions")).to_contain_text("@champion")
    assert mlflow.MlflowClient().get_model_version_by_alias(model, "champion").version == "2"
    # Moving it names both versions.
    page.locator("input[name=alias]").fill("champion")
    page.locator("select[name=version]").select_option("1")
    page.get_by_role("button", name="Set alias…").click()
    expect(page.locator("#change")).to_have_text(f"Move @champion of {model} from version 2 to version 1?")
    page.locator("#confirm").click()
    assert mlflow.MlflowClient().get_model_version_by_alias(model, "champion").version == "1"
    # The model's history (the audit trail) says who moved it, newest first.
    expect(page.locator("#history li").first).to_contain_text("@champion moved from v2 to v1 by anonymous")
    expect(page.locator("#history")).to_contain_text("@champion set to v2 by anonymous")
    shot(page, "model")


def test_platform_page_shows_usage(server, seeded, page):
    page.goto(f"{server.url}/ui/platform?days=7")
    expect(page.locator("h1")).to_have_text("Platform")
    expect(page.locator("#usage-summary")).to_contain_text("Active users")
    expect(page.locator("svg").first).to_be_visible()
    shot(page, "platform")


def test_deployments_and_experiments_pages_render(server, seeded, page):
    page.goto(f"{server.url}/ui/deployments")
    expect(page.locator("h1")).to_have_text("Deployments")
    shot(page, "deployments")
    page.goto(f"{server.url}/ui/experiments")
    expect(page.locator("table tbody tr").first).to_be_visible()
    shot(page, "experiments")


def test_a_deployment_has_its_own_page_with_charts_on_one_axis(server, page, tmp_path):
    import subprocess

    import requests
    from conftest import PLINTH_BIN

    data = tmp_path / "plays.tsv"
    data.write_text("".join(f"u{u}\ti{(u + i) % 40}\n" for u in range(60) for i in range(8)))
    model = f"ui-recs-{uuid.uuid4().hex[:6]}"
    for algo in ["als", "popularity"]:
        subprocess.run([PLINTH_BIN, "train", "recommender", "--data", str(data), "--algo", algo, "--factors", "8",
                        "--register", model, "--tracking-uri", server.url, "--json"],
                       check=True, capture_output=True, timeout=300)
    name = f"home-{uuid.uuid4().hex[:6]}"
    spec = {"name": name, "variants": [{"name": "als", "model": f"{model}/1", "weight": 1},
                                       {"name": "pop", "model": f"{model}/2", "weight": 1}]}
    assert requests.post(f"{server.url}/api/2.0/plinth/deployments/create", json=spec, timeout=30).status_code == 200
    for u in range(40):
        requests.post(f"{server.url}/v1/deployments/{name}/recommend", json={"user": f"u{u}", "k": 5}, timeout=30)
    from conftest import eventually

    row = page.locator("table tbody tr", has_text=name)

    def counted():
        # Behind a balancer, other replicas' counts arrive within their publication interval.
        page.goto(f"{server.url}/ui/deployments")
        return row.locator("td").nth(4).inner_text() == "40"

    eventually(counted, what="40 requests on the page")
    expect(row).to_contain_text("als")
    row.get_by_role("link", name=name).click()
    expect(page.locator("h1")).to_contain_text(name)
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(3)
    # One colour per variant: every chart lists the variants in the same order.
    legends = [charts.nth(i).locator("rect").evaluate_all("rs => rs.map(r => r.getAttribute('fill'))")
               for i in range(3)]
    assert legends[0] == legends[1] == legends[2] and len(legends[0]) == 2, legends
    shot(page, "deployment")
    assert requests.get(f"{server.url}/ui/deployments/no-such", timeout=30).status_code == 404


def test_a_deployment_experiment_page_shows_the_analysis(server, page, tmp_path):
    """The experiment page: a form for the metric, then per variant units, mean, interval, lift, guardrails and
    the sample-ratio check, the same figures as the analysis API, and the lift's interval over time as a chart."""
    import requests
    from conftest import eventually, register_recommender

    model = register_recommender(server, tmp_path, "ui-exp")
    name = f"exp-ui-{uuid.uuid4().hex[:6]}"
    spec = {"name": name, "variants": [{"name": "a", "model": f"{model}/1"}, {"name": "b", "model": f"{model}/1"}]}
    assert requests.post(f"{server.url}/api/2.0/plinth/deployments/create", json=spec, timeout=30).status_code == 200
    for u in range(80):
        r = requests.post(f"{server.url}/v1/deployments/{name}/recommend", json={"user": f"user{u % 60}", "k": 5},
                          headers={"X-Plinth-Unit": f"unit{u}"}, timeout=30)
        assert r.status_code == 200, r.text
    events = [{"unit": f"unit{u}", "kind": "play", "value": float(u % 7), "deployment": name}
              for u in range(80) for _ in range(1 + u % 3)]
    assert requests.post(f"{server.url}/v1/events", json=events, timeout=30).json()["accepted"] == len(events)

    def analysed():
        r = requests.get(f"{server.url}/api/2.0/plinth/deployments/analysis",
                         params={"name": name, "event": "play", "window": "1h"}, timeout=30)
        return r.json() if r.status_code == 200 and sum(v["units"] for v in r.json()["variants"]) == 80 else None

    api = eventually(analysed, what="every unit in the analysis")
    page.goto(f"{server.url}/ui/deployments/{name}")
    page.get_by_role("link", name="Experiment: analyse").click()
    expect(page.locator("h1")).to_contain_text(f"{name} experiment")
    page.locator("input[name=event]").fill("play")
    page.locator("input[name=window]").fill("1h")
    page.get_by_role("button", name="Analyse").click()
    table = page.locator("table.analysis")
    expect(table.locator("tbody tr")).to_have_count(2)
    for v in api["variants"]:
        row = table.locator("tbody tr", has_text=v["name"]).first
        cells = row.locator("td")
        expect(cells.nth(2)).to_have_text(str(v["units"]))
    expect(table.locator("tbody tr").first).to_contain_text("(control)")
    expect(page.locator("p.srm")).to_contain_text("Sample ratio")
    expect(page.locator("svg.chart")).to_have_count(1)
    shot(page, "deployment-experiment")
    # A bad window is the caller's mistake, said on the page.
    r = requests.get(f"{server.url}/ui/deployments/{name}/experiment", params={"event": "play", "window": "soon"},
                     timeout=30)
    assert r.status_code == 400 and "window" in r.text


def test_the_experiment_page_shows_a_policy_and_its_decision_log(server, page, tmp_path):
    """A policy's stage, guardrails, verdict and decision log on the experiment page, and its named metrics as the
    form's choices (the policy's primary metric analysed by default)."""
    import requests
    from conftest import eventually, register_recommender

    model = register_recommender(server, tmp_path, "ui-pol")
    name = f"pol-ui-{uuid.uuid4().hex[:6]}"
    spec = {"name": name, "variants": [{"name": "a", "model": f"{model}/1"}, {"name": "b", "model": f"{model}/1"}],
            "metrics": [{"name": "minutes", "event": "play", "aggregate": "sum", "window": "1h"},
                        {"name": "plays", "event": "play", "aggregate": "count", "window": "1h"}],
            "policy": {"metric": "minutes", "min_units": 500, "ramp": [50],
                       "guardrails": [{"error_rate": 0.05}, {"metric": "minutes", "max_drop": 0.1}]}}
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create", json=spec, timeout=30)
    assert r.status_code == 200, r.text
    variants = {}
    for u in range(100):
        r = requests.post(f"{server.url}/v1/deployments/{name}/recommend", json={"user": f"user{u % 60}", "k": 5},
                          headers={"X-Plinth-Unit": f"unit{u}"}, timeout=30)
        variants[f"unit{u}"] = r.json()["variant"]
    events = [{"unit": unit, "kind": "play", "value": 1.0 if v == "b" else 30.0 + u % 5, "deployment": name}
              for u, (unit, v) in enumerate(variants.items())]
    assert requests.post(f"{server.url}/v1/events", json=events, timeout=30).json()["accepted"] == len(events)

    def stopped():
        r = requests.get(f"{server.url}/api/2.0/plinth/deployments/policy", params={"name": name}, timeout=30)
        return r.json()["decisions"] or None

    eventually(stopped, timeout=30, what="the policy's decision")
    page.goto(f"{server.url}/ui/deployments/{name}/experiment")
    expect(page.locator("h2", has_text="Policy")).to_have_count(1)
    expect(page.locator("span.badge").first).to_have_text("stopped")
    log = page.locator("table.decisions tbody tr")
    expect(log).to_have_count(1)
    expect(log.first).to_contain_text("stop")
    expect(log.first).to_contain_text("guardrail breached: minutes drops by at most 10%")
    expect(page.locator("table.guardrails tbody tr")).to_have_count(2)
    # The policy's primary metric is analysed without asking; another named one by picking it.
    expect(page.locator("table.analysis")).to_contain_text("(control)")
    page.locator("select[name=metric]").select_option("plays")
    page.get_by_role("button", name="Analyse").first.click()
    expect(page.locator("select[name=metric]")).to_have_value("plays")
    expect(page.locator("table.analysis tbody tr")).to_have_count(2)
    shot(page, "deployment-policy")


def test_deleting_an_experiment_asks_first(server, seeded, page):
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    experiment_id = mlflow.create_experiment(name)
    page.goto(f"{server.url}/ui/experiments?q={name}")
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#change")).to_contain_text(f"Delete experiment {name}")
    shot(page, "experiment-delete-confirm")
    assert mlflow.get_experiment(experiment_id).lifecycle_stage == "active", "nothing changes before confirming"
    page.locator("#confirm").click()
    assert mlflow.get_experiment(experiment_id).lifecycle_stage == "deleted"


def test_jobs_page_renders(server, page):
    page.goto(f"{server.url}/ui/jobs")
    expect(page.locator("h1")).to_have_text("Training jobs")
    shot(page, "jobs")


def test_links_that_mlflow_prints_open_the_run(server, seeded, page):
    _, experiment_id, runs, model = seeded
    run_id = runs["als-large"]
    page.goto(f"{server.url}/#/experiments/{experiment_id}/runs/{run_id}")
    expect(page).to_have_url(f"{server.url}/ui/runs/{run_id}")
    page.goto(f"{server.url}/#/experiments/{experiment_id}")
    expect(page).to_have_url(f"{server.url}/ui/experiments/{experiment_id}")
    page.goto(f"{server.url}/#/models/{model}/versions/1")
    expect(page).to_have_url(f"{server.url}/ui/models/{model}")


def test_sign_in_session_and_sign_out_with_auth_on(page, tmp_path):
    """`--auth`: a page shows the sign-in form; signing in sets a session cookie (HttpOnly, SameSite=Strict)
    and goes back to the page; the header names the user; signing out ends the session."""
    from conftest import PlinthServer

    srv = PlinthServer(str(tmp_path), extra_args=["--auth"],
                       env={"PLINTH_ADMIN_USER": "admin", "PLINTH_ADMIN_PASSWORD": "admin-password-1"}).start()
    context = page.context.browser.new_context()
    try:
        tab = context.new_page()
        tab.set_default_timeout(20_000)
        response = tab.goto(f"{srv.url}/ui/models")
        assert response.status == 401
        tab.locator("input[name=username]").fill("admin")
        tab.locator("input[name=password]").fill("wrong")
        tab.get_by_role("button", name="Sign in").click()
        expect(tab.locator("div.error")).to_have_text("Wrong username or password.")
        tab.locator("input[name=username]").fill("admin")
        tab.locator("input[name=password]").fill("admin-password-1")
        tab.get_by_role("button", name="Sign in").click()
        expect(tab).to_have_url(f"{srv.url}/ui/models")
        expect(tab.locator("header")).to_contain_text("Signed in as admin")
        cookie = next(c for c in context.cookies() if c["name"] == "plinth_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        shot(tab, "signed-in")
        tab.get_by_role("button", name="Sign out").click()
        expect(tab.locator("h1")).to_have_text("Sign in")
        assert tab.goto(f"{srv.url}/ui/models").status == 401, "the session ended"
    finally:
        context.close()
        srv.stop()
